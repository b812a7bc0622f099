# Shared by the hack/ scripts: installing what they need on a fresh machine.

# Installs the Debian packages providing the given commands when a command is missing.
# Usage: ensure_packages command:package ...
ensure_packages() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# protoc for etcd-client's build, etcd for the etcd backend.
ensure_build_deps() {
  ensure_packages protoc:protobuf-compiler etcd:etcd-server
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The official Python client, used by the end-to-end tests as an unmodified client.
ensure_python_client() {
  python3 -c 'import kubernetes' 2>/dev/null && return 0
  echo "installing the Python kubernetes client" >&2
  python3 -m pip install --quiet kubernetes
}
