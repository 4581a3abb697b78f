/* test_lru.c: the LRU hash table finds entries by hash and key (colliding hashes included),
 * keeps them in order of use, grows up to its maximum and no further, and stops at once when
 * asked to remove an entry it does not hold. */
#include "lru.h"
#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

struct item {
    int key;
    struct lru_node node;
};

static bool item_same(const struct lru_node *n, const void *key)
{
    return LRU_ENTRY(n, struct item, node)->key == *(const int *)key;
}

static struct item *item_find(const struct lru *t, uint64_t hash, int key)
{
    struct lru_node *n = lru_find(t, hash, item_same, &key);
    return n ? LRU_ENTRY(n, struct item, node) : NULL;
}

TEST(test_lru_finds_by_key_among_colliding_hashes)
{
    struct lru t;
    struct item a = {.key = 1}, b = {.key = 2}, c = {.key = 3};

    CHECK_INT(lru_init(&t, 4, 4), 0);
    lru_insert(&t, &a.node, 7); /* a and b share a hash: only the key tells them apart */
    lru_insert(&t, &b.node, 7);
    lru_insert(&t, &c.node, 11); /* same bucket as 7 (11 & 3 == 7 & 3), another hash */
    CHECK_INT(t.count, 3);
    CHECK(item_find(&t, 7, 1) == &a);
    CHECK(item_find(&t, 7, 2) == &b);
    CHECK(item_find(&t, 11, 3) == &c);
    CHECK(item_find(&t, 7, 3) == NULL); /* right key, wrong hash */
    CHECK(item_find(&t, 8, 1) == NULL);
    lru_remove(&t, &a.node);
    CHECK(item_find(&t, 7, 1) == NULL);
    CHECK(item_find(&t, 7, 2) == &b);
    CHECK_INT(t.count, 2);
    lru_remove(&t, &b.node);
    lru_remove(&t, &c.node);
    CHECK_INT(t.count, 0);
    CHECK(lru_oldest(&t) == NULL && lru_newest(&t) == NULL);
    lru_destroy(&t);
}

TEST(test_lru_order_follows_use)
{
    struct lru t;
    struct item e[3] = {{.key = 0}, {.key = 1}, {.key = 2}};

    CHECK_INT(lru_init(&t, 8, 8), 0);
    for (int i = 0; i < 3; i++)
        lru_insert(&t, &e[i].node, (uint64_t)i);
    CHECK(lru_oldest(&t) == &e[0].node);
    CHECK(lru_newest(&t) == &e[2].node);
    CHECK(lru_newer(&e[0].node) == &e[1].node && lru_older(&e[1].node) == &e[0].node);
    lru_touch(&t, &e[0].node);
    CHECK(lru_newest(&t) == &e[0].node);
    CHECK(lru_oldest(&t) == &e[1].node);
    CHECK(lru_older(&e[0].node) == &e[2].node && lru_newer(&e[0].node) == NULL);
    lru_touch(&t, &e[0].node); /* already the newest: nothing moves */
    CHECK(lru_newest(&t) == &e[0].node && lru_oldest(&t) == &e[1].node);
    lru_remove(&t, &e[2].node); /* from the middle */
    CHECK(lru_newer(&e[1].node) == &e[0].node && lru_older(&e[0].node) == &e[1].node);
    CHECK(lru_older(&e[1].node) == NULL);
    lru_destroy(&t);
}

TEST(test_lru_grows_to_its_maximum_and_keeps_every_entry)
{
    enum { N = 1000 };
    struct lru t;
    struct item *e = calloc(N, sizeof *e);

    CHECK(e != NULL);
    CHECK_INT(lru_init(&t, 2, 256), 0);
    for (int i = 0; i < N; i++) {
        e[i].key = i;
        lru_insert(&t, &e[i].node, (uint64_t)i * 2654435761u);
    }
    CHECK_INT(t.nbuckets, 256); /* doubled while full, then chains grew instead */
    CHECK_INT(t.count, N);
    for (int i = 0; i < N; i++)
        CHECK(item_find(&t, (uint64_t)i * 2654435761u, i) == &e[i]);
    int seen = 0;
    for (struct lru_node *n = lru_oldest(&t); n; n = lru_newer(n), seen++)
        CHECK(n == &e[seen].node); /* insertion order survives rehashing */
    CHECK_INT(seen, N);
    for (int i = 0; i < N; i++)
        lru_remove(&t, &e[i].node);
    CHECK_INT(t.count, 0);
    lru_destroy(&t);
    free(e);
}

TEST(test_lru_remove_of_a_stranger_aborts)
{
    struct lru t, other;
    struct item in = {.key = 1}, out = {.key = 2};

    CHECK_INT(lru_init(&t, 4, 4), 0);
    CHECK_INT(lru_init(&other, 4, 4), 0);
    lru_insert(&t, &in.node, 1);
    lru_insert(&other, &out.node, 1);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);      /* the invariant's message is expected here */
        lru_remove(&t, &out.node); /* in the other table: a bug, caught */
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(item_find(&t, 1, 1) == &in); /* the parent's table is untouched */
    lru_remove(&t, &in.node);
    lru_remove(&other, &out.node);
    lru_destroy(&t);
    lru_destroy(&other);
}
