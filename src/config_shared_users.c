/* config_shared_users.c: "shared_store_users" (config.h): a server's users read from a Redis
 * hash, name -> password, so that one HSET and a reload of every host (SIGHUP) change the
 * users of a whole fleet. Read with hiredis' synchronous API, bounded by a timeout, where the
 * file is read: at start (before any worker serves) and in the master's reload, which waits
 * for it as it waits for the file. The users join the file's; config_validate() then checks
 * them (unique names and keys, the method's rules) and derives their keys like the file's. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "config.h"
#include "config_private.h"

#ifdef RP_HAVE_HIREDIS

#include <hiredis/hiredis.h>

static bool users_text(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 && !memchr(r->str, '\0', r->len);
}

/* Appends the users of an HGETALL answer (name, password, name, password...). */
static int users_append(struct config *c, const redisReply *r, char *err, size_t errlen)
{
    size_t n = r->elements / 2;
    char q[96];

    config_quote(c->shared.users_key, q, sizeof q);
    if (n == 0)
        return 0;
    if (n > (size_t)(CONFIG_MAX_USERS - c->n_users))
        return config_invalid(c, CONFIG_KEY_SHARED_STORE_USERS, err, errlen,
                              "\"shared_store_users\": %zu users in %s, with the file's more than "
                              "%d",
                              n, q, CONFIG_MAX_USERS);
    struct config_user *users = realloc(c->users, ((size_t)c->n_users + n) * sizeof *users);
    if (!users)
        return config_invalid(c, -1, err, errlen, "out of memory");
    c->users = users;
    for (size_t i = 0; i < n; i++) {
        const redisReply *name = r->element[2 * i], *password = r->element[2 * i + 1];
        if (!users_text(name) || !users_text(password))
            return config_invalid(c, CONFIG_KEY_SHARED_STORE_USERS, err, errlen,
                                  "\"shared_store_users\": %s's field %zu: expected a name and a "
                                  "password, non-empty, without NUL bytes",
                                  q, i);
        struct config_user *u = &c->users[c->n_users++]; /* counted: config_free() frees it */
        *u = (struct config_user){.metrics_slot = -1};
        u->name = strndup(name->str, name->len);
        u->password = strndup(password->str, password->len);
        if (!u->name || !u->password)
            return config_invalid(c, -1, err, errlen, "out of memory");
    }
    return 0;
}

int config_load_shared_users(struct config *c, char *err, size_t errlen)
{
    const struct config_shared *sh = &c->shared;
    struct timeval tv = {CONFIG_SHARED_USERS_TIMEOUT, 0};
    char q[96];
    int ret;

    if (!sh->users_key)
        return 0;
    if (config_check_shared(c, err, errlen) != 0) /* the address, typed */
        return -1;
    redisContext *rc = sh->is_unix ? redisConnectUnixWithTimeout(sh->path, tv)
                                   : redisConnectWithTimeout(sh->host, sh->port, tv);
    if (rc && !rc->err)
        redisSetTimeout(rc, tv);
    /* NULL (the reason in rc->errstr) when Redis is unreachable or late */
    redisReply *r = rc && !rc->err ? redisCommand(rc, "SELECT %d", sh->db) : NULL;
    if (r && r->type != REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        r = redisCommand(rc, "HGETALL %s", sh->users_key);
    }
    config_quote(sh->users_key, q, sizeof q);
    if (!r)
        ret = config_invalid(c, CONFIG_KEY_SHARED_STORE_USERS, err, errlen,
                             "\"shared_store_users\": cannot read %s from Redis: %s", q,
                             rc ? rc->errstr : "out of memory");
    else if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        ret = config_invalid(c, CONFIG_KEY_SHARED_STORE_USERS, err, errlen,
                             "\"shared_store_users\": expected %s to be a Redis hash (name -> "
                             "password), Redis says: %s",
                             q, r->type == REDIS_REPLY_ERROR ? r->str : "another type");
    else
        ret = users_append(c, r, err, errlen);
    if (r)
        freeReplyObject(r);
    if (rc)
        redisFree(rc);
    return ret;
}

#else /* no hiredis: config_check_shared() says the build lacks it */

int config_load_shared_users(struct config *c, char *err, size_t errlen)
{
    return c->shared.users_key ? config_check_shared(c, err, errlen) : 0;
}

#endif
