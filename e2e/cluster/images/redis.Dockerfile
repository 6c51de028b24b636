# The managed Redis image, made from Debian's redis-server where no
# registry can be reached, and loaded as the operator's default Redis image
# (redis:7.0.15-bookworm: the upstream tag of the same Redis on the same
# Debian). Like the upstream image: runs what it is given as redis-server
# arguments, protected mode off (the Service and a NetworkPolicy guard it).
ARG RUNTIME_IMAGE=debian:bookworm-slim
FROM ${RUNTIME_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && mkdir -p /data && chown 999:999 /data
WORKDIR /data
USER 999:999
EXPOSE 6379
ENTRYPOINT ["/usr/bin/redis-server", "--protected-mode", "no"]
