# Dockerfile: reuseproxy from its Debian package, for those who deploy containers (issue 19).
#
#   dpkg-buildpackage -us -uc -b && cp ../reuseproxy_*.deb .
#   podman build --format docker -t reuseproxy .        (or docker build)
#   podman run -d --network host \
#       -v /etc/reuseproxy/proxy.json:/etc/reuseproxy/proxy.json:ro reuseproxy
#
# The package's postinst creates the reuseproxy user and a proxy.json with a random password
# (server on 0.0.0.0:8488, metrics on 127.0.0.1:9100); mount your own over it. The process runs
# as that user (a port below 1024 then needs --cap-add NET_BIND_SERVICE or a higher port).
# --network host keeps SO_REUSEPORT and UDP behaving as on the host; with a bridge network
# publish the TCP and UDP ports both. The health check reads /metrics over bash's /dev/tcp, so
# the image needs no HTTP client; it needs "metrics_address": "127.0.0.1:9100" in the file.
# Build with --format docker (the OCI format drops HEALTHCHECK). docs/DEPLOYMENT.md, section 4,
# says what was built and run on the development machine: built with podman, not run there.
FROM debian:12-slim

COPY reuseproxy_*.deb /tmp/
RUN apt-get update \
    && apt-get install -y --no-install-recommends /tmp/reuseproxy_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/reuseproxy_*.deb

USER reuseproxy
EXPOSE 8488/tcp 8488/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9100 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^reuseproxy_worker_pid' <&3"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/reuseproxy"]
CMD ["-c", "/etc/reuseproxy/proxy.json"]
