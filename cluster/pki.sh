# The cluster's certificates and keys (openssl), written once into $SLB_STATE/pki.
# Sourced by cluster/up.sh. Layout follows kubeadm's: a cluster CA for the API server, the
# components and the admin; a separate front-proxy CA for the aggregation layer
# (metrics.k8s.io); an RSA key pair that signs service-account tokens.
# shellcheck shell=bash

pki_dir() { echo "$SLB_STATE/pki"; }

# sign NAME CN ORG SANS CA: key + cert NAME.{key,crt} signed by CA (ca or front-proxy-ca).
# SANS is a comma-separated subjectAltName list ("" for client-only certs).
sign() {
  local name="$1" cn="$2" org="$3" sans="$4" ca="$5" dir subj ext
  dir="$(pki_dir)"
  [ -s "$dir/$name.crt" ] && return 0
  subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org$subj"
  ext="$dir/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -subj "$subj" \
    -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

make_ca() {
  local name="$1" cn="$2" dir
  dir="$(pki_dir)"
  [ -s "$dir/$name.crt" ] && return 0
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -subj "/CN=$cn" \
    -days 3650 -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$dir/$name.crt" 2>/dev/null
}

make_pki() {
  local dir
  dir="$(pki_dir)"
  mkdir -p "$dir"
  chmod 700 "$dir"
  make_ca ca selfheal-lb-ca
  make_ca front-proxy-ca selfheal-lb-front-proxy-ca
  local api_sans="IP:$NODE_IP,IP:$KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes"
  api_sans+=",DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  sign apiserver kube-apiserver "" "$api_sans" ca
  # The API server's client identity towards kubelets (logs, exec, the pod proxy).
  sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" ca
  sign front-proxy-client front-proxy-client "" "" front-proxy-ca
  sign admin selfheal-lb-admin system:masters "" ca
  sign controller-manager system:kube-controller-manager "" "" ca
  sign scheduler system:kube-scheduler "" "" ca
  local n
  # Each kubelet: a client identity of its own (the Node authorizer lets it change only its
  # own Node) and a serving certificate for its own address (metrics-server, logs, exec).
  for ((n = 1; n <= ${NODES:-1}; n++)); do
    sign "$(node_cert kubelet "$n")" "system:node:$(node_name "$n")" system:nodes "" ca
    sign "$(node_cert kubelet-serving "$n")" "$(node_name "$n")" "" \
      "IP:$(node_ip "$n"),DNS:$(node_name "$n")" ca
  done
  sign kube-proxy system:kube-proxy "" "" ca
  sign kube-router system:kube-router "" "" ca
  sign lb-status system:selfheal-lb-lb-status "" "" ca
  [ -s "$dir/sa.key" ] || {
    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  }
  chmod 600 "$dir"/*.key
}

# kubeconfig FILE CERTNAME [CONTEXT]: a kubeconfig for the cert's identity.
write_kubeconfig() {
  local file="$1" cert="$2" context="${3:-$SLB_CONTEXT}" dir
  dir="$(pki_dir)"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $SLB_CONTEXT
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$dir/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 <"$dir/$cert.crt")
    client-key-data: $(base64 -w0 <"$dir/$cert.key")
contexts:
- name: $context
  context:
    cluster: $SLB_CONTEXT
    user: $cert
current-context: $context
EOF
  chmod 600 "$file"
}
