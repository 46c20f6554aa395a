package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"

	esconf "github.com/kaudit/kaudit/conf/elasticsearch"
)

// templateFor picks the built-in event template for the engine.
func templateFor(info ServerInfo, bodyMapping string) string {
	if bodyMapping == "disabled" {
		return esconf.Generic
	}
	switch info.BodyType() {
	case "flattened":
		return esconf.Elasticsearch
	case "flat_object":
		return esconf.OpenSearch
	}
	return esconf.Generic
}

// eventTemplate is the composable template body for the events: the
// built-in one for the engine (or template_file), with index_patterns,
// priority and, for a data stream, data_stream set from the settings.
func (c *Config) eventTemplate(info ServerInfo) ([]byte, string, error) {
	file := templateFor(info, c.BodyMapping)
	src, name := esconf.Template(file), "built-in "+file
	if c.TemplateFile != "" {
		b, err := os.ReadFile(c.TemplateFile)
		if err != nil {
			return nil, "", fmt.Errorf("template_file: %v", unwrapPath(err))
		}
		// The operator's template is installed as written.
		if !json.Valid(b) {
			return nil, "", fmt.Errorf("template_file %s is not valid JSON", c.TemplateFile)
		}
		return b, c.TemplateFile, nil
	}
	var t map[string]any
	if err := json.Unmarshal(src, &t); err != nil {
		return nil, "", fmt.Errorf("%s: %v", name, err)
	}
	t["index_patterns"] = []string{c.IndexPattern()}
	t["priority"] = c.TemplatePriority
	if c.DataStream != "" {
		t["data_stream"] = map[string]any{}
	}
	b, err := json.Marshal(t)
	return b, name, err
}

// deadLetterTemplate is the template for the dead-letter index, one
// priority above the events' so it wins where the patterns overlap.
func (c *Config) deadLetterTemplate() ([]byte, error) {
	var t map[string]any
	if err := json.Unmarshal(esconf.Template(esconf.DeadLetter), &t); err != nil {
		return nil, err
	}
	t["index_patterns"] = []string{c.DeadLetter.Glob()}
	t["priority"] = c.TemplatePriority + 1
	return json.Marshal(t)
}

// install puts the templates (and creates the data stream). Each failure
// is returned; the caller logs it and delivery goes on regardless.
func (s *Sink) install(ctx context.Context, info ServerInfo) error {
	body, src, err := s.cfg.eventTemplate(info)
	if err != nil {
		return err
	}
	if err := s.put(ctx, "/_index_template/"+url.PathEscape(s.cfg.TemplateName), body, nil); err != nil {
		return fmt.Errorf("index template %q: %w", s.cfg.TemplateName, err)
	}
	what := fmt.Sprintf("index template %q (%s) for %q", s.cfg.TemplateName, src, s.cfg.IndexPattern())
	if s.cfg.DataStream != "" {
		ok := func(status int, errType string) bool {
			return status == http.StatusBadRequest && errType == "resource_already_exists_exception"
		}
		if err := s.put(ctx, "/_data_stream/"+url.PathEscape(s.cfg.DataStream), nil, ok); err != nil {
			return fmt.Errorf("data stream %q: %w", s.cfg.DataStream, err)
		}
		what += fmt.Sprintf(", data stream %q", s.cfg.DataStream)
	}
	if s.cfg.DeadLetter != nil {
		name := s.cfg.TemplateName + "-dead-letter"
		dl, err := s.cfg.deadLetterTemplate()
		if err != nil {
			return err
		}
		if err := s.put(ctx, "/_index_template/"+url.PathEscape(name), dl, nil); err != nil {
			return fmt.Errorf("index template %q: %w", name, err)
		}
		what += fmt.Sprintf(", index template %q for %q", name, s.cfg.DeadLetter.Glob())
	}
	s.log.Infof("installed %s", what)
	return nil
}

// put sends a PUT and wants a 2xx (or what ok accepts).
func (s *Sink) put(ctx context.Context, path string, body []byte, ok func(status int, errType string) bool) error {
	return s.client.do(ctx, request{method: http.MethodPut, path: path, body: body}, func(host string, resp *http.Response) error {
		if resp.StatusCode/100 == 2 {
			return nil
		}
		b := readBody(resp)
		sum := errorSummary(b)
		if ok != nil {
			typ, _ := splitSummary(sum)
			if ok(resp.StatusCode, typ) {
				return nil
			}
		}
		return fmt.Errorf("%s answered HTTP %d: %s", host, resp.StatusCode, sum)
	})
}

// splitSummary splits "type: reason".
func splitSummary(s string) (typ, reason string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == ':' && s[i+1] == ' ' {
			return s[:i], s[i+2:]
		}
	}
	return "", s
}
