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

# nginx_conf DIR ERROR_LOG INCLUDE...: writes DIR/nginx.conf, an nginx that keeps everything
# (pid, logs, temp files) under DIR and serves the included files' servers; makes DIR/tmp
# readable by the workers (they run as nobody when nginx is started by root).
nginx_conf() {
    local dir="$1" error_log="$2" inc
    shift 2
    mkdir -p "$dir/tmp"
    chmod 0755 "$dir" "$dir/tmp"
    {
        cat <<NGX
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $error_log;
events { worker_connections 1024; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
NGX
        for inc in "$@"; do echo "    include $inc;"; done
        echo "}"
    } >"$dir/nginx.conf"
}
