package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// ClientTLS reads the TLS keys every network sink takes — tls_verify
// (default on), tls_ca_file, tls_crt_file with tls_key_file, and
// tls_server_name — and builds the client configuration. Fluent Bit keeps
// `tls` and `tls.*` for itself and never passes them to a Go plugin, so
// these names differ from its built-in outputs' on purpose.
func (p *Props) ClientTLS() (*tls.Config, error) {
	verify, err := p.Bool("tls_verify", true)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for _, k := range []string{"tls_ca_file", "tls_crt_file", "tls_key_file"} {
		if files[k], err = p.File(k); err != nil {
			return nil, err
		}
	}
	crt, key := files["tls_crt_file"], files["tls_key_file"]
	if (crt == "") != (key == "") {
		if crt == "" {
			return nil, p.Invalid("tls_crt_file", "set together with tls_key_file (a client certificate needs both)")
		}
		return nil, p.Invalid("tls_key_file", "set together with tls_crt_file (a client certificate needs both)")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !verify, ServerName: p.Raw("tls_server_name")}
	if ca := files["tls_ca_file"]; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, p.Invalid("tls_ca_file", "a readable PEM file (%v)", unwrapPathErr(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, p.Invalid("tls_ca_file", "a PEM file holding at least one CA certificate")
		}
		tc.RootCAs = pool
	}
	if crt != "" {
		pair, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			return nil, p.Invalid("tls_crt_file", "a PEM certificate matching tls_key_file (%v)", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
