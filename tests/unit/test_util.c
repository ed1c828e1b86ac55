/* Whole-file reading (util.h: gm_read_fd, gm_read_file): the size limit at its edge, what is
 * not a regular file, a missing one, and a pipe read to its end. Kubernetes name checks. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gammamesh/util.h"
#include "test.h"

static char dir[] = "/tmp/gm-test-util-XXXXXX";

static void put(const char *name, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    fclose(f);
}

static int read_path(const char *name, size_t max, size_t *len)
{
    char path[128], *buf = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = gm_read_file(path, max, &buf, len);
    if (rc == 0) {
        CHECK(buf[*len] == '\0');
        CHECK(*len == 0 || buf[0] == 'a');
        free(buf);
    }
    return rc;
}

int main(void)
{
    size_t len = 7;

    if (mkdtemp(dir) == NULL)
        return 1;
    put("empty", 0);
    put("small", 10);
    put("big", 10000); /* several reads and buffer growths */
    CHECK_EQ_INT(read_path("empty", 100, &len), 0);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(read_path("small", 10, &len), 0);
    CHECK_EQ_INT(len, 10);
    CHECK_EQ_INT(read_path("small", 9, &len), -EFBIG);
    CHECK_EQ_INT(read_path("big", 10000, &len), 0);
    CHECK_EQ_INT(len, 10000);
    CHECK_EQ_INT(read_path("big", 9999, &len), -EFBIG);
    CHECK_EQ_INT(read_path("missing", 100, &len), -ENOENT);
    CHECK_EQ_INT(read_path(".", 100, &len), -EINVAL);

    /* a pipe has no size to check first: the limit applies while reading */
    for (int limit = 5000; limit <= 6000; limit += 1000) {
        int p[2];
        char *buf = NULL;
        CHECK_EQ_INT(pipe(p), 0);
        for (int i = 0; i < 6000; i++)
            CHECK_EQ_INT(write(p[1], "x", 1), 1);
        close(p[1]);
        int rc = gm_read_fd(p[0], (size_t)limit, &buf, &len);
        close(p[0]);
        CHECK_EQ_INT(rc, limit < 6000 ? -EFBIG : 0);
        if (rc == 0)
            CHECK_EQ_INT(len, 6000);
        free(buf);
    }

    CHECK(gm_check_dns_label("demo-1") == NULL);
    CHECK(gm_check_dns_label("a.b") != NULL);
    CHECK(gm_check_dns_label("-a") != NULL);
    CHECK(gm_check_dns_label("Demo") != NULL);
    CHECK(gm_check_dns_subdomain("web-7d9f.x") == NULL);
    CHECK(gm_check_dns_subdomain("a.-b") != NULL);
    CHECK(gm_check_dns_subdomain("a..b") != NULL);
    CHECK(gm_check_dns_subdomain("") != NULL);

    char path[128];
    const char *names[] = {"empty", "small", "big"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return TEST_DONE();
}
