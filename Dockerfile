# kaudit: the official Fluent Bit image with the kaudit output plugin.
#
#   docker build -t ghcr.io/kaudit/kaudit:0.1.0 .
#
# /fluent-bit/etc is laid out exactly like the kaudit ConfigMap
# (conf/kubernetes/deploy/20-configmap.yaml), which replaces it on a node:
# the node's fluent-bit.conf and plugins.conf, the audit policy, critical
# workloads and detections. The backend comes from the environment
# (KAUDIT_OUTPUT, KAUDIT_URL, KAUDIT_USER, KAUDIT_PASSWORD, KAUDIT_CLUSTER,
# KAUDIT_NODE, KAUDIT_TRUSTED_NETWORKS; see the README, "Deploy").
#
# Go 1.22+ is required: older Go crashes on Fluent Bit's coroutine stacks
# ("fatal: morestack on g0", fluent-bit-go#71).

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
COPY conf/kubernetes/fluent-bit/fluent-bit.conf conf/kubernetes/fluent-bit/plugins.conf \
     conf/audit-policy.yaml conf/critical-workloads.yaml conf/detections.yaml /fluent-bit/etc/
ENV KAUDIT_ETC=/fluent-bit/etc \
    KAUDIT_OUTPUT=stdout
ENTRYPOINT ["/fluent-bit/bin/fluent-bit"]
CMD ["-c", "/fluent-bit/etc/fluent-bit.conf"]
