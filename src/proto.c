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
        break; /* not served yet */
    }
    return NULL;
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
    return p->aead ? 0 : -1;
}

void proto_udp_free(struct proto_udp *p)
{
    crypto_aead_free(p->aead);
    memset(p, 0, sizeof *p);
}
