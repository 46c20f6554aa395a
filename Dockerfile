# kaudit: the official Fluent Bit image with the kaudit output plugin.
#   docker build -t kaudit .
#   docker run --rm -v /var/log/kubernetes/audit:/var/log/kubernetes/audit:ro kaudit
# Go 1.22+ is required (older Go crashes on Fluent Bit's coroutine stacks:
# "morestack on g0", fluent-bit-go#71).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -buildmode=c-shared -o /out/out_kaudit.so . \
 && CGO_ENABLED=0 go build -trimpath -o /out/kaudit ./cmd/kaudit

# Pinned: the plugin boundary was checked against Fluent Bit 5.1.1's Go proxy.
FROM fluent/fluent-bit:5.1.1
COPY --from=build /out/out_kaudit.so /fluent-bit/plugins/out_kaudit.so
COPY --from=build /out/kaudit /fluent-bit/bin/kaudit
COPY conf/ /fluent-bit/etc/
ENTRYPOINT ["/fluent-bit/bin/fluent-bit", "-e", "/fluent-bit/plugins/out_kaudit.so"]
CMD ["-c", "/fluent-bit/etc/fluent-bit.conf"]
