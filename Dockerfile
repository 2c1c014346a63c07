# nodeping agent image: a static Go binary on a distroless base, run as a non-root user that holds
# only CAP_NET_RAW (for the raw ICMP socket).
#
#   docker build -t nodeping:dev .
#
# The DaemonSet (manifests/) must still grant the capability: securityContext.capabilities.add:
# ["NET_RAW"], drop: ["ALL"]. The file capability set below lets the non-root user use it without
# allowPrivilegeEscalation. Where net.ipv4.ping_group_range admits the user, the agent falls back
# to unprivileged ping sockets on its own and says so in nodeping_icmp_socket_info.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/nodeping-agent ./cmd/nodeping-agent
# File capabilities: the binary gets CAP_NET_RAW when the container's bounding set allows it.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin \
 && setcap cap_net_raw+ep /out/nodeping-agent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nodeping-agent /usr/local/bin/nodeping-agent
COPY LICENSE /licenses/LICENSE
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodeping-agent"]
