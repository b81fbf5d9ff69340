# shellcheck shell=bash
# What the deploy scripts share (sourced, not run): a free loopback port, and waiting for one.

# free_port: prints a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: 0 once something accepts connections on 127.0.0.1:PORT (10 s at most).
wait_port() {
    local port="$1" i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
        : "$i"
    done
    return 1
}
