#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""seccomp-bpf.py [IN [OUT]] - a seccomp profile for loopfastd's container.

podman's and CRI-O's default profile (containers/common,
/usr/share/containers/seccomp.json) lets bpf() through only for a container
that holds CAP_SYS_ADMIN; loopfastd holds CAP_BPF instead. This writes the
same profile with bpf() allowed for CAP_BPF, and nothing else changed (the
rule that answers EPERM without CAP_SYS_ADMIN loses bpf, so without either
capability bpf() gets the profile's default answer, ENOSYS). containerd's
default profile allows it already (containerd 1.7 and later).

    podman run --security-opt seccomp=OUT ...
    Kubernetes on CRI-O: OUT in the kubelet's seccomp directory, and
    seccompProfile: {type: Localhost, localhostProfile: OUT's name}
"""
import json
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
profile = json.load(open(src))
for rule in profile["syscalls"]:
    if "bpf" in rule["names"] and rule["action"] == "SCMP_ACT_ERRNO":
        rule["names"].remove("bpf")
profile["syscalls"].append({"names": ["bpf"], "action": "SCMP_ACT_ALLOW",
                            "includes": {"caps": ["CAP_BPF"]}})
out = open(sys.argv[2], "w") if len(sys.argv) > 2 else sys.stdout
json.dump(profile, out, indent=1)
out.write("\n")
