/* rp_assert.h: invariants that must hold (a stage transition, list membership, an index in
 * range). A failed check is a bug in reuseproxy, never bad input: it names the file, line and
 * condition on stderr and aborts, so that tests, the sanitizer builds and the fuzzers stop at
 * the first broken invariant instead of running on with corrupt state (haproxy's BUG_ON and
 * Redis's serverAssert do the same). The checks are cheap and stay on in every build; a build
 * may define RP_NO_ASSERT to compile them out. */
#ifndef RP_ASSERT_H
#define RP_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#ifdef RP_NO_ASSERT
#define RP_ASSERT(cond) ((void)0)
#else
#define RP_ASSERT(cond)                                                                        \
    ((cond) ? (void)0                                                                          \
            : (fprintf(stderr, "reuseproxy: %s:%d: %s: invariant failed: %s\n", __FILE__,     \
                       __LINE__, __func__, #cond),                                             \
               abort()))
#endif

#endif
