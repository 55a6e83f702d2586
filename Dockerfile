# Build stage: a static binary with the web client embedded.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/chorus ./cmd/chorus

# Runtime stage: no shell, no package manager, runs as an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chorus /chorus
# HTTP/WebSocket (signaling, WHIP/WHEP, APIs, web client), ICE over TCP, the single media UDP port, and
# the embedded TURN server (off unless CHORUS_TURN=true).
EXPOSE 7880/tcp 7881/tcp 7882/udp 3478/udp
USER nonroot:nonroot
# Server-side recordings (mount a volume here to keep them).
ENV CHORUS_RECORDINGS_DIR=/home/nonroot/recordings
VOLUME /home/nonroot/recordings
# Safe by default: listening on every interface, Chorus refuses to start without an API secret
# (CHORUS_API_SECRET, 32 bytes or more): every client then needs an access token. Settings can also come
# from a YAML file (CHORUS_CONFIG) or CHORUS_* variables; see docs/configuration.md. Advertise the host's
# public address with CHORUS_NAT_1TO1_IPS when behind NAT.
ENV CHORUS_LISTEN=0.0.0.0:7880 CHORUS_UDP_PORT=7882 CHORUS_TCP_PORT=7881
ENTRYPOINT ["/chorus"]
