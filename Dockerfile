# nodeping image: the agent and the controller, static Go binaries on a distroless base. The agent
# needs only CAP_NET_RAW (for its raw ICMP socket); the controller no capability at all.
#
#   docker build -t nodeping:dev .
#
# Run by hand (docker run --cap-add NET_RAW), the file capability below lets the non-root user open
# the raw socket. The shipped DaemonSet (manifests/base) instead runs the agent as uid 0 with every
# capability dropped but NET_RAW and no privilege escalation: it must write into the host's
# root-owned textfile directory, and file capabilities need privilege escalation allowed. Where
# net.ipv4.ping_group_range admits the user, the agent falls back to unprivileged ping sockets.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/nodeping-agent ./cmd/nodeping-agent \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/nodeping-controller ./cmd/nodeping-controller
# File capabilities: the binary gets CAP_NET_RAW when the container's bounding set allows it.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libcap2-bin \
 && setcap cap_net_raw+ep /out/nodeping-agent

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nodeping-agent /out/nodeping-controller /usr/local/bin/
COPY LICENSE /licenses/LICENSE
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nodeping-agent"]
