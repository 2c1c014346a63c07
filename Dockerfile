# nodeping image: the agent and the controller, static Go binaries on a distroless base.
#
#   docker build -t nodeping:dev .
#
# Both base images are pinned by digest, so a rebuild takes the same bytes until someone bumps
# them on purpose: scripts/pin-images prints the current digests of the tags below (with crane,
# or docker buildx imagetools) and rewrites the FROM lines; review and commit the change. The
# builder's Go is exactly the toolchain go.mod names: GOTOOLCHAIN makes the go command fetch that
# release from the module proxy, checked against the checksum database, whatever the image ships.
#
# Capabilities: the binary carries NO file capability. A file capability (setcap cap_net_raw+ep)
# makes exec itself fail ("operation not permitted", exit 126) wherever NET_RAW is not in the
# bounding set, as under the restricted Pod Security level, so the agent would never get to try
# its fallback; and no_new_privs (allowPrivilegeEscalation: false) ignores file capabilities
# anyway. The agent instead uses CAP_NET_RAW when the container grants it (the shipped
# DaemonSet: uid 0, every capability dropped but NET_RAW), and otherwise unprivileged ICMP ping
# sockets, which the host's net.ipv4.ping_group_range must admit (docs/reliability.md).

FROM golang:1.27-trixie@sha256:9baa6b4187bbb98d240372a8a235ac0bb6b5ddd52bba1431dc2f7c0705862728 AS build
ENV GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download && go version | grep -q 'go1.27.3 '
COPY cmd/ cmd/
COPY pkg/ pkg/
COPY internal/ internal/
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/nodeping-agent ./cmd/nodeping-agent \
 && go build -trimpath -ldflags "-s -w" -o /out/nodeping-controller ./cmd/nodeping-controller

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/nodeping-agent /out/nodeping-controller /usr/local/bin/
COPY LICENSE /licenses/LICENSE
LABEL org.opencontainers.image.title="nodeping" org.opencontainers.image.source="https://github.com/nodeping/nodeping" org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodeping-agent"]
