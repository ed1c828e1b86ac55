/* ztunnel's pod discovery (netns.h: zt_netns_scan_pods) over a fake /proc tree: the cgroup
 * paths that kubelet's systemd and cgroupfs drivers write, cgroup v1 and v2, the lowest pid of a
 * pod, and everything that must not be taken for a pod. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netns.h"
#include "test.h"

static char root[64];

static void put(const char *pid, const char *cgroup)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", root, pid);
    mkdir(path, 0755);
    if (cgroup == NULL)
        return;
    snprintf(path, sizeof(path), "%s/%s/cgroup", root, pid);
    FILE *f = fopen(path, "w");
    fputs(cgroup, f);
    fclose(f);
}

static long pid_of(const struct zt_pod_pid *v, long n, const char *uid)
{
    for (long i = 0; i < n; i++)
        if (strcmp(v[i].uid, uid) == 0)
            return v[i].pid;
    return 0;
}

int main(void)
{
    struct zt_pod_pid *v;

    snprintf(root, sizeof(root), "/tmp/gm-proc-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    /* systemd driver, cgroup v2: dashes become underscores; two processes of one pod */
    put("710", "0::/kubepods.slice/kubepods-besteffort.slice/"
               "kubepods-besteffort-pod1b2c3d4e_0000_4111_8222_abcdefabcdef.slice/"
               "cri-containerd-0123.scope\n");
    put("77", "0::/kubepods.slice/kubepods-besteffort.slice/"
              "kubepods-besteffort-pod1b2c3d4e_0000_4111_8222_abcdefabcdef.slice/"
              "cri-containerd-4567.scope\n");
    /* cgroupfs driver, cgroup v1 (several hierarchies, the pod on each) */
    put("2000", "12:pids:/kubepods/burstable/pod9a8b7c6d-1111-2222-3333-444455556666/abc\n"
                "11:memory:/kubepods/burstable/pod9a8b7c6d-1111-2222-3333-444455556666/abc\n"
                "0::/\n");
    /* guaranteed QoS has no class level; upper-case hex is read as the same uid */
    put("3000", "0::/kubepods/pod0A0B0C0D-1111-2222-3333-444455556666/x\n");
    /* not pods: a system service, a "pod" that is no uid, a uid that runs on, podman */
    put("30", "0::/system.slice/sshd.service\n");
    put("40", "0::/kubepods/podnot-a-uid-at-all-0000-000000000000/x\n");
    put("41", "0::/kubepods/pod9a8b7c6d-1111-2222-3333-4444555566667/x\n");
    put("42", "0::/user.slice/pod9a8b7c6d-1111-2222-3333-44445555666/x\n");
    put("50", NULL); /* no cgroup file: the process is gone */
    put("self", "0::/kubepods/pod11111111-2222-3333-4444-555555555555/x\n"); /* not a pid */
    long n = zt_netns_scan_pods(root, &v);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(pid_of(v, n, "1b2c3d4e-0000-4111-8222-abcdefabcdef"), 77);
    CHECK_EQ_INT(pid_of(v, n, "9a8b7c6d-1111-2222-3333-444455556666"), 2000);
    CHECK_EQ_INT(pid_of(v, n, "0a0b0c0d-1111-2222-3333-444455556666"), 3000);
    CHECK_EQ_INT(pid_of(v, n, "11111111-2222-3333-4444-555555555555"), 0);
    free(v);
    CHECK_EQ_INT(zt_netns_scan_pods("/nonexistent/proc", &v), -ENOENT);
    CHECK(v == NULL);
    /* the real /proc reads (this test is no pod, so it may find none) */
    CHECK(zt_netns_scan_pods("/proc", &v) >= 0);
    free(v);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
    return TEST_DONE();
}
