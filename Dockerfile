# syntax=docker/dockerfile:1
#
# Qiao: a static binary on distroless.
#
#   docker build -t qiao --build-arg VERSION=$(git describe --always) .
#   docker run -p 5556:5556 -v $PWD/qiao.yaml:/etc/qiao/config.yaml:ro \
#     -e QIAO_SECRET -e QIAO_DATABASE_URL qiao
#
# The configuration must listen on 0.0.0.0:5556 (http.listen) to be
# reachable from outside the container.

# ---- build: a static binary (CGO off; the SQLite driver is pure Go) ----
FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/qiao ./cmd/qiao

# ---- run: distroless static (CA certificates, tzdata, a nonroot user; no shell) ----
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/qiao /usr/local/bin/qiao
# uid 65532; an embedded SQLite store would go to /home/nonroot/data/qiao.db.
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 5556
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/qiao", "healthcheck", "http://127.0.0.1:5556/readyz"]
ENTRYPOINT ["/usr/local/bin/qiao"]
CMD ["serve", "--config", "/etc/qiao/config.yaml"]
