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
# HTTP/WebSocket (signaling, WHIP/WHEP, web client) and the single media UDP port.
EXPOSE 7880/tcp 7882/udp
USER nonroot:nonroot
# Server-side recordings (mount a volume here to keep them).
ENV CHORUS_RECORDINGS_DIR=/home/nonroot/recordings
VOLUME /home/nonroot/recordings
# Advertise the host's public address with --nat-1to1-ips (or CHORUS_NAT_1TO1_IPS) when behind NAT.
ENTRYPOINT ["/chorus", "--listen", "0.0.0.0:7880", "--udp-port", "7882"]
