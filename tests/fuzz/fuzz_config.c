/* Fuzzes config_load on the input written to an anonymous file (memfd) and read back through /proc/self/fd. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/fuzz/fuzz.h"

int fuzz_config(const uint8_t *data, size_t size)
{
    char path[64], err[1024];
    int fd = memfd_create("certqd-fuzz.conf", MFD_CLOEXEC);

    if (fd < 0) {
        perror("memfd_create");
        return 0;
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        perror("write to memfd");
        close(fd);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    struct config *cfg = config_load(path, err, sizeof(err));
    FUZZ_CHECK(cfg != NULL || err[0] != '\0', "config_load failed without a message");
    if (cfg) {
        FUZZ_CHECK(cfg->server_count > 0, "a config without servers was accepted");
        FUZZ_CHECK(cfg->redis_host || cfg->redis_unix, "accepted config has no Redis address");
        FUZZ_CHECK(cfg->retry_base_ms <= cfg->retry_max_ms, "retry_base_ms above retry_max_ms");
        for (size_t i = 0; i < cfg->server_count; i++)
            FUZZ_CHECK(cfg->servers[i].url && cfg->servers[i].user && cfg->servers[i].token,
                       "server %zu lacks url, user or token", i);
    }
    config_free(cfg);
    close(fd);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_config(data, size);
}
#endif
