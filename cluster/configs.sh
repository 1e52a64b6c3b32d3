# Configuration files of the node's daemons, written into $SLB_STATE. Sourced by cluster/up.sh.
# shellcheck shell=bash

write_containerd_config() {
  mkdir -p "$SLB_STATE/cni/net.d" "$SLB_STATE/containerd"
  cat >"$SLB_STATE/containerd/config.toml" <<EOF
version = 2
# Images live outside the state dir so they survive 'make cluster-down'.
root = "$SLB_CACHE/containerd"
state = "$SLB_STATE/containerd/run"
[grpc]
  address = "$SLB_STATE/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM lacks CAP_SYS_RESOURCE: without this every pod sandbox fails to start
  # ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$SLB_STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
  # One bridge for the node's pods; host-local addresses from the node's pod CIDR.
  cat >"$SLB_STATE/cni/net.d/10-selfheal-lb.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "selfheal-lb",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$SLB_STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  mkdir -p "$SLB_STATE/kubelet"
  # Pods with dnsPolicy Default get this: no upstream resolver exists on this machine.
  echo "options ndots:1" >"$SLB_STATE/kubelet/resolv.conf"
  cat >"$SLB_STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
# 1.35 is the last release that still runs on cgroup v1 (this machine's); say so explicitly.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SLB_STATE/containerd.sock
clusterDNS: [$DNS_SVC_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $SLB_STATE/kubelet/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $SLB_STATE/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $SLB_STATE/pki/kubelet-serving.crt
tlsPrivateKeyFile: $SLB_STATE/pki/kubelet-serving.key
# Every image is built here and cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
failSwapOn: false
serializeImagePulls: false
podCIDR: $POD_CIDR
maxPods: 110
# The metrics-server addon scrapes every 15 s; fresher CPU figures under short loads.
nodeStatusReportFrequency: 10s
EOF
}

write_kube_proxy_config() {
  mkdir -p "$SLB_STATE/kube-proxy"
  cat >"$SLB_STATE/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $SLB_STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: 127.0.0.1:10249
# This VM cannot write the conntrack sysctls: 0 leaves them as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}
