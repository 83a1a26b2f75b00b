# One image with every hexride command; compose.yaml picks one per service.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# h3-go needs cgo.
RUN CGO_ENABLED=1 go build -trimpath -o /out/ ./cmd/...

FROM debian:bookworm-slim
COPY --from=build /out/ /usr/local/bin/
USER 65534:65534
