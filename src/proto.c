/* proto.c: choosing a protocol from the method, and the parts of proto.h every protocol
 * shares (a direction's stream, a worker's datagram scratch). */
#include "autoconfig.h"

#include "proto.h"

#include <string.h>

const struct proto_ops *proto_for_method(enum crypto_method m)
{
    const struct crypto_method_info *info = crypto_method_info(m);

    if (!info)
        return NULL;
    switch (info->proto) {
    case CRYPTO_PROTO_SIP004:
        return &proto_sip004;
    case CRYPTO_PROTO_SIP022:
        return &proto_sip022;
    }
    return NULL;
}

int proto_ctx_init(struct proto_ctx *ctx)
{
    return ctx->ops->ctx_init ? ctx->ops->ctx_init(ctx) : 0;
}

void proto_ctx_free(struct proto_ctx *ctx)
{
    if (ctx->ops && ctx->ops->ctx_free)
        ctx->ops->ctx_free(ctx);
    ctx->priv = NULL;
}

int proto_open_chunks(struct ss_stream *s, uint8_t *buf, size_t len, size_t at, size_t *consumed,
                      struct iovec *iov, int n, int max)
{
    while (n < max && at < len) {
        size_t used, plen;
        uint8_t *payload;
        int r = ss_stream_open_chunk(s, buf + at, len - at, &used, &payload, &plen);
        if (r == SS_OPEN_NEED_MORE)
            break;
        if (r == SS_OPEN_ERROR)
            return -1;
        at += used;
        iov[n].iov_base = payload;
        iov[n].iov_len = plen;
        n++;
    }
    *consumed = at;
    return n;
}

void proto_dir_init(struct proto_dir *d)
{
    memset(d, 0, sizeof *d);
    d->ss.pending_len = SS_PENDING_NONE;
}

void proto_dir_free(struct proto_dir *d)
{
    ss_stream_free(&d->ss);
    crypto_wipe(d, sizeof *d);
    proto_dir_init(d);
}

/* The context is allocated once with a throwaway all-zero key: every seal and open re-keys it
 * first, so no key sits in a second place. */
int proto_udp_init(struct proto_udp *p, const struct proto_ctx *ctx)
{
    static const uint8_t placeholder[CRYPTO_MAX_KEY];

    memset(p, 0, sizeof *p);
    if (!ctx || ctx->nkeys == 0)
        return -1;
    p->ctx = ctx;
    p->aead = crypto_aead_new(ctx->keys[0].method, placeholder);
    if (!p->aead)
        return -1;
    return ctx->ops->udp_init ? ctx->ops->udp_init(p) : 0;
}

void proto_udp_free(struct proto_udp *p)
{
    if (p->ctx && p->ctx->ops->udp_free)
        p->ctx->ops->udp_free(p);
    crypto_aead_free(p->aead);
    memset(p, 0, sizeof *p);
}
