// Module github.com/kaudit/kaudit/test/tools pins the third-party servers
// the end-to-end tests run, apart from the main module's dependencies.
//
// go.mod's tool directive pins VictoriaLogs (Apache-2.0); build it with
//
//	cd test/tools && CGO_ENABLED=0 go build -trimpath -o ../../.cache/bin/victoria-logs \
//	    github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
//
// or `make victorialogs`, or let test/servers.StartVictoriaLogs do it. Never
// add a Grafana Loki or other Grafana Go module (AGPL) here.
package tools
