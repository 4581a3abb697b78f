/* fuzz_manager.c: the ss-manager API's parser (manager.c), which reads every datagram that
 * reaches manager_address, and the state file's reader. Promises:
 *  - any input is a command or refused with a reason, never a crash or an overread;
 *  - an accepted "add" has a port in 1..65535 and a NUL-terminated password that fits;
 *  - a port list read from the input, written again, reads back the same. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "manager.h"

static void check_state_text(const uint8_t *data, size_t size)
{
    struct manager_ports p = {0}, q = {0};
    char why[256];

    if (manager_ports_from_json((const char *)data, size, &p, why, sizeof why) != 0) {
        FUZZ_CHECK(p.n == 0 && why[0] != '\0');
        return;
    }
    char *text = manager_ports_to_json(&p);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(manager_ports_from_json(text, strlen(text), &q, why, sizeof why) == 0);
    FUZZ_CHECK(p.n == q.n);
    for (int i = 0; i < p.n; i++)
        FUZZ_CHECK(memcmp(&p.v[i], &q.v[i], sizeof p.v[i]) == 0);
    free(text);
    manager_ports_free(&p);
    manager_ports_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manager_cmd cmd;
    char why[256];

    why[0] = '\0';
    if (manager_parse((const char *)data, size, &cmd, why, sizeof why) != 0) {
        FUZZ_CHECK(why[0] != '\0');
    } else if (cmd.verb == MANAGER_ADD) {
        FUZZ_CHECK(cmd.port.port >= 1);
        FUZZ_CHECK(memchr(cmd.port.password, '\0', sizeof cmd.port.password) != NULL);
        FUZZ_CHECK(!cmd.port.has_method || crypto_method_info(cmd.port.method) != NULL);
    } else if (cmd.verb == MANAGER_REMOVE) {
        FUZZ_CHECK(cmd.port.port >= 1);
    }
    check_state_text(data, size);
    return 0;
}
