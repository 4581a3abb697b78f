/* fuzz_control_users.c: the users payload a worker reads from its master's control channel
 * (control.c). The master is trusted, but a worker must not be taken down by a payload it cannot
 * read: a refusal sends the master to replacing the workers instead. Promises:
 *  - any input is accepted or refused, never a crash or an overread;
 *  - an accepted payload takes every byte, and each of its users has a name of 1 or more bytes
 *    inside the input and a key no longer than CRYPTO_MAX_KEY. */
#include "autoconfig.h"

#include <string.h>

#include "control.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct control_users u;

    if (control_users_parse(data, size, &u) != 0)
        return 0;
    FUZZ_CHECK(u.n_port >= 0 && u.n_port <= CONFIG_MAX_PORTS);
    for (int i = 0; i < u.n_port; i++) {
        const struct control_port *p = &u.ports[i];
        FUZZ_CHECK(p->key.len <= CRYPTO_MAX_KEY && p->n_users >= 0);
        for (int k = 0; k < p->n_users; k++) {
            const struct control_user *cu = &p->users[k];
            FUZZ_CHECK(cu->name_len > 0 && (const uint8_t *)cu->name >= data &&
                       (const uint8_t *)cu->name + cu->name_len <= data + size);
            FUZZ_CHECK(cu->key.len <= CRYPTO_MAX_KEY && cu->metrics_slot >= -1);
        }
    }
    control_users_free(&u);
    return 0;
}
