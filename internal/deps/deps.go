//go:build deps

// Package deps pins the modules the project is building on while their
// users are being written, so go.sum stays complete for every package.
// Removed once each is imported for real.
package deps

import (
	_ "github.com/fluent/fluent-bit-go/output"
	_ "github.com/golang/snappy"
	_ "github.com/google/cel-go/cel"
	_ "github.com/json-iterator/go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/stretchr/testify/assert"
	_ "github.com/stretchr/testify/require"
	_ "github.com/tinylib/msgp/msgp"
	_ "google.golang.org/protobuf/encoding/protowire"
	_ "k8s.io/api/apps/v1"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/api/rbac/v1"
	_ "k8s.io/apimachinery/pkg/labels"
	_ "k8s.io/apimachinery/pkg/runtime/serializer"
	_ "k8s.io/apiserver/pkg/apis/audit/v1"
	_ "k8s.io/apiserver/pkg/audit/policy"
	_ "k8s.io/apiserver/pkg/authorization/authorizer"
	_ "k8s.io/utils/lru"
	_ "sigs.k8s.io/yaml"
)
