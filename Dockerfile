# syntax=docker/dockerfile:1
#
# Loadswarm node image: one static binary on distroless, as non-root.
#
#   docker build -t loadswarm:dev --build-arg VERSION=$(git describe --always) .
#   docker run --rm loadswarm:dev --version
#   docker run -d --name swarm -v swarm-data:/data \
#     -p 7946:7946/tcp -p 7946:7946/udp -p 7947:7947/tcp \
#     -e SWARM_NAME=eu-1 -e SWARM_REGION=eu-west -e SWARM_ADVERTISE=<host IP> \
#     loadswarm:dev
#
# Ports: gossip 7946 (TCP and UDP), libp2p 7947 (TCP). The HTTP API
# (7070) listens on 127.0.0.1 inside the container only: it has no
# authentication, is not EXPOSEd, and must never be published. Use it from
# inside: docker exec swarm swarm peers
# Kubernetes manifests: deploy/k8s (see deploy/README.md).

FROM docker.io/library/golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/loadswarm/loadswarm/cmd/swarm/cli.Version=${VERSION}" \
      -o /out/swarm ./cmd/swarm \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="loadswarm" \
      org.opencontainers.image.description="Loadswarm: a peer-to-peer load-testing swarm (the swarm node and CLI)" \
      org.opencontainers.image.source="https://github.com/loadswarm/loadswarm" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/swarm /usr/local/bin/swarm
# /data must exist and belong to the non-root user (65532) before it is a
# volume, or a fresh named volume would be root's and unwritable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV SWARM_DATA_DIR=/data \
    SWARM_BIND=0.0.0.0:7946 \
    SWARM_API=127.0.0.1:7070
VOLUME ["/data"]
EXPOSE 7946/tcp 7946/udp 7947/tcp
USER 65532:65532
# Exits non-zero when the node's API does not answer. (Docker only: OCI
# images drop HEALTHCHECK; Kubernetes uses the same command as exec probes.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/swarm", "peers", "--api", "127.0.0.1:7070"]
ENTRYPOINT ["/usr/local/bin/swarm"]
CMD ["join"]
