# syntax=docker/dockerfile:1
#
# Image of the kubedispatch dispatcher: ghcr.io/kubedispatch/dispatcher.
#
#   docker build -t ghcr.io/kubedispatch/dispatcher:v0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/kubedispatch/dispatcher:v0.1.0 --push .
#
# Note: this file cannot be built on our development machines: they have the docker client but no Docker engine.
# Build it in CI or on a machine with a running engine (it is kept for multi-platform release builds). Locally,
# `make image` builds the same image without Docker (hack/image, internal/ociimage): bin/images/dispatcher.tar, with
# the same layout as the final stage below: the static binary at /dispatcher, the CA certificates at
# /etc/ssl/certs/ca-certificates.crt, /etc/passwd and /etc/group with the nonroot user 65532, USER 65532:65532,
# ENTRYPOINT ["/dispatcher"], ports 8080 and 8081. Keep the two in step.

# Build stage: a static binary (no cgo), cross-compiled for the target platform on the build platform.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src

# Dependencies first, so they stay cached while only the sources change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/dispatcher ./cmd/dispatcher

# Final stage: distroless static, running as the nonroot user (65532). The binary embeds the time zone database
# (cron triggers) and needs nothing else from the image; CA certificates come with distroless.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/kubedispatch/kubedispatch"
COPY --from=builder /out/dispatcher /dispatcher
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/dispatcher"]
