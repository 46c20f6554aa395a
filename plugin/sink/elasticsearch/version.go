package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Product is the engine behind the hosts.
type Product uint8

// Products.
const (
	Unknown Product = iota
	Elasticsearch
	OpenSearch
)

func (p Product) String() string {
	return [...]string{"unknown", "Elasticsearch", "OpenSearch"}[p]
}

// ServerInfo is what `GET /` says.
type ServerInfo struct {
	Product      Product
	Version      string
	Major, Minor int
	Cluster      string
	// Warning explains why the answer was not fully trusted ("" when it
	// was).
	Warning string
}

// BodyType is the mapping type that takes arbitrary objects (request and
// response bodies, annotations) without ever adding fields or failing on
// a shape conflict: flattened on Elasticsearch ≥ 7.3, flat_object on
// OpenSearch ≥ 2.7, and "" (an object with enabled: false: kept in
// _source, not searchable) otherwise.
func (s ServerInfo) BodyType() string {
	switch {
	case s.Product == Elasticsearch && s.atLeast(7, 3):
		return "flattened"
	case s.Product == OpenSearch && s.atLeast(2, 7):
		return "flat_object"
	}
	return ""
}

// DataStreams reports whether the engine has data streams (Elasticsearch
// 7.9, OpenSearch 1.0).
func (s ServerInfo) DataStreams() bool {
	return s.Product == OpenSearch || s.Product == Elasticsearch && s.atLeast(7, 9) || s.Product == Unknown
}

func (s ServerInfo) atLeast(major, minor int) bool {
	return s.Major > major || s.Major == major && s.Minor >= minor
}

func (s ServerInfo) String() string {
	if s.Product == Unknown && s.Version == "" {
		return "unknown engine"
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s", s.Product, s.Version))
}

// parseInfo reads the answer to `GET /`. Elasticsearch ≥ 7.14 sends
// X-Elastic-Product: Elasticsearch (its own clients refuse a server that
// does not); OpenSearch says distribution "opensearch".
func parseInfo(h http.Header, body []byte) (ServerInfo, error) {
	var r struct {
		ClusterName string `json:"cluster_name"`
		Tagline     string `json:"tagline"`
		Version     struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
			BuildFlavor  string `json:"build_flavor"`
		} `json:"version"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return ServerInfo{}, fmt.Errorf("GET / answer is not JSON: %v", err)
	}
	if r.Version.Number == "" {
		return ServerInfo{}, fmt.Errorf("GET / answer has no version.number")
	}
	s := ServerInfo{Version: r.Version.Number, Cluster: r.ClusterName}
	s.Major, s.Minor = splitVersion(r.Version.Number)
	header := h.Get("X-Elastic-Product")
	switch {
	case strings.EqualFold(r.Version.Distribution, "opensearch"):
		s.Product = OpenSearch
	case header == "Elasticsearch":
		s.Product = Elasticsearch
	case s.Major >= 8 || s.Major == 7 && s.Minor >= 14:
		s.Warning = fmt.Sprintf("the server says version %s but sends no X-Elastic-Product: Elasticsearch header, so it is not a genuine Elasticsearch; treated as an unknown engine", r.Version.Number)
	case r.Tagline == "You Know, for Search" && s.Major >= 7:
		s.Product = Elasticsearch
	default:
		s.Warning = fmt.Sprintf("unrecognised engine (version %s)", r.Version.Number)
	}
	if s.Product == Elasticsearch && s.Major < 7 || s.Product == OpenSearch && s.Major < 1 {
		s.Warning = fmt.Sprintf("%s %s is not supported (Elasticsearch 7.17, 8, 9 and OpenSearch 2.x are)", s.Product, s.Version)
	}
	return s, nil
}

func splitVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	major, _ = strconv.Atoi(parts[0])
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// detect asks GET / which engine and version answer.
func (s *Sink) detect(ctx context.Context) (ServerInfo, error) {
	var info ServerInfo
	err := s.client.do(ctx, request{method: http.MethodGet, path: "/"}, func(host string, resp *http.Response) error {
		b := readBody(resp)
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusUnauthorized, http.StatusForbidden:
			ae := &authError{host: host, status: resp.StatusCode, reason: errorSummary(b)}
			s.logAuth(ae)
			return ae
		default:
			return fmt.Errorf("%s: GET / answered HTTP %d: %s", host, resp.StatusCode, errorSummary(b))
		}
		var err error
		info, err = parseInfo(resp.Header, b)
		if err != nil {
			return fmt.Errorf("%s: %w", host, err)
		}
		return nil
	})
	return info, err
}
