/* gammamesh-waypoint entry point (minimal for now): `--explain` explains one request,
 * `--check --config-dir DIR` validates a configuration directory. The daemon mode arrives with
 * the daemon skeleton. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "explain.h"
#include "gammamesh/config.h"

static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

static void usage(FILE *f)
{
    fputs("usage: waypoint --check --config-dir DIR\n"
          "       waypoint --explain --config-dir DIR --from-namespace NS --to HOST[:PORT] "
          "[--method M] [--path P] [-H 'Name: value']...\n",
          f);
}

/* `--check --config-dir DIR`: print every problem; exit 0 when there is none, 1 otherwise. */
static int check_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"check", no_argument, NULL, 'c'},
        {"config-dir", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt != 'c')
            goto usage;
    }
    if (dir == NULL || optind < argc)
        goto usage;
    int errors = gm_config_check(dir, NULL, stdout, NULL);
    if (errors < 0) {
        fprintf(stderr, "waypoint: %s: %s\n", dir, strerror(-errors));
        return 1;
    }
    fprintf(stderr, "waypoint: %s: %d error%s\n", dir, errors, errors == 1 ? "" : "s");
    return errors ? 1 : 0;
usage:
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (has_flag(argc, argv, "--explain"))
        return wp_explain_main(argc, argv, stdout, stderr);
    if (has_flag(argc, argv, "--check"))
        return check_main(argc, argv);
    if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
        usage(stdout);
        return 0;
    }
    fputs("waypoint: not implemented (only --check and --explain for now)\n", stderr);
    return 2;
}
