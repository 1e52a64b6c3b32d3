# Configuration files of a node's daemons, written into its state dir (node 1: $SLB_STATE,
# node N: $SLB_STATE/node<N>). Sourced by cluster/up.sh; each takes the node's number.
# NODES (the cluster's node count) > 1 adds what several nodes need; with NODES=1 the files are
# what the one-node cluster always had.
# shellcheck shell=bash

write_containerd_config() {
  local n="$1" st masq=true
  st="$(node_state "$n")"
  # Several nodes: a pod's address must reach pods on other nodes unchanged (NetworkPolicy
  # selects by pod address), so the bridge does not masquerade; pods never need the machine's
  # real network (no registry, no upstream DNS).
  ((${NODES:-1} > 1)) && masq=false
  mkdir -p "$st/cni/net.d" "$st/containerd"
  cat >"$st/containerd/config.toml" <<EOF
version = 2
# Images live outside the state dir so they survive 'make cluster-down'.
root = "$(node_containerd_root "$n")"
state = "$st/containerd/run"
[grpc]
  address = "$st/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM lacks CAP_SYS_RESOURCE: without this every pod sandbox fails to start
  # ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$st/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
  # One bridge for the node's pods; host-local addresses from the node's pod CIDR.
  cat >"$st/cni/net.d/10-selfheal-lb.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "selfheal-lb",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": $masq,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$st/cni/ipam",
        "ranges": [[{"subnet": "$(node_pod_cidr "$n")"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  local n="$1" st
  st="$(node_state "$n")"
  mkdir -p "$st/kubelet"
  # Pods with dnsPolicy Default get this: no upstream resolver exists on this machine.
  echo "options ndots:1" >"$st/kubelet/resolv.conf"
  cat >"$st/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$n")
# 1.35 is the last release that still runs on cgroup v1 (this machine's); say so explicitly.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$st/containerd.sock
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $st/kubelet/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $SLB_STATE/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $SLB_STATE/pki/$(node_cert kubelet-serving "$n").crt
tlsPrivateKeyFile: $SLB_STATE/pki/$(node_cert kubelet-serving "$n").key
# Every image is built here and cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
failSwapOn: false
serializeImagePulls: false
podCIDR: $(node_pod_cidr "$n")
maxPods: 110
# The metrics-server addon scrapes every 15 s; fresher CPU figures under short loads.
nodeStatusReportFrequency: 10s
EOF
  if ((${NODES:-1} > 1)); then
    # Node-loss detection (with the controller-manager's --node-monitor-grace-period=20s in
    # up.sh): the lease is renewed every 25 % of its duration, so every 5 s, four renewals
    # within the grace period: one or two late renewals under load on 2 cores do not flap
    # the node. Kubernetes' defaults (lease 40 s, grace 50 s) take ~50 s to call a node lost.
    cat >>"$st/kubelet/config.yaml" <<EOF
nodeLeaseDurationSeconds: 20
nodeStatusUpdateFrequency: 5s
EOF
  fi
  if ((n > 1)); then
    # Several kubelets share this machine's cgroups and /var/log/pods: each keeps its pods
    # below a cgroup and a log directory of its own, so none treats the others' as orphans.
    cat >>"$st/kubelet/config.yaml" <<EOF
cgroupRoot: $(node_cgroup "$n")
podLogsDir: $st/pod-logs
EOF
  fi
}

write_kube_proxy_config() {
  local n="$1" st cidr="$POD_CIDR"
  st="$(node_state "$n")"
  ((${NODES:-1} > 1)) && cidr="$CLUSTER_CIDR"  # every node's pods are "inside" the cluster
  mkdir -p "$st/kube-proxy"
  cat >"$st/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $SLB_STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $cidr
hostnameOverride: $(node_name "$n")
bindAddress: $(node_ip "$n")
healthzBindAddress: $(node_ip "$n"):10256
metricsBindAddress: 127.0.0.1:10249
# This VM cannot write the conntrack sysctls: 0 leaves them as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}
