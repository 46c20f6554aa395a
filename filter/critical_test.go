package filter

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

const testSelectors = `
- name: databases
  severity: high
  namespaces: ["db", "prod-*"]
  resources:
    - {group: "", resource: pods}
    - {group: apps, resource: statefulsets}
  labels: "app in (postgres,mysql),tier=db"
  expected_actors:
    users: ["dba-*@example.com"]
    groups: ["db-admins"]
    service_accounts: ["db/backup-*"]
  windows:
    - days: daily
      start: "02:00"
      end: "03:00"
      time_zone: Europe/Amsterdam
    - days: weekdays
      start: "09:00"
      end: "18:00"
      time_zone: Europe/Amsterdam
- name: db-secrets
  severity: critical
  namespaces: ["db"]
  resources: [{resource: secrets}]
  names: ["pg-*", "mysql-root"]
- name: exec-anywhere
  severity: low
  resources: [{group: "*", resource: "*", subresources: [exec, attach]}]
  windows:
    - {days: [sat, sun], start: "22:00", end: "06:00"}
`

func testCritical(t testing.TB, cacheSize int) *criticalStage {
	t.Helper()
	sels, err := compileSelectors([]byte(testSelectors))
	require.NoError(t, err)
	return newCritical(sels, cacheSize)
}

// ams returns an event time given in Amsterdam local time (CEST in June).
func ams(s string) time.Time {
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	t, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		panic(err)
	}
	return t
}

func pgPod(name string) string {
	return `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"` + name + `","namespace":"db","labels":{"app":"postgres","tier":"db"}},"spec":{}}`
}

// processCrit runs enrichment (for the actor) and the critical stage.
func processCrit(st *criticalStage, ev *Event) []CriticalMatch {
	(&enrichStage{actions: actionCache{m: map[string]string{}}}).Process(ev)
	st.Process(ev)
	return ev.Kaudit.Critical
}

func TestCriticalSelectors(t *testing.T) {
	dba := withUser("dba-jane@example.com", "system:authenticated")
	backup := withUser("system:serviceaccount:db:backup-nightly", "system:serviceaccounts", "system:authenticated")
	dbAdmin := withUser("bob", "db-admins", "system:authenticated")
	// 2025-06-04 is a Wednesday, 2025-06-07 a Saturday.
	wedNight := withReceived(ams("2025-06-04 02:30"), 10*time.Millisecond)
	wedWork := withReceived(ams("2025-06-04 10:00"), 10*time.Millisecond)
	wedEve := withReceived(ams("2025-06-04 20:00"), 10*time.Millisecond)
	satNight := withReceived(ams("2025-06-07 02:59"), 10*time.Millisecond)
	satNoon := withReceived(ams("2025-06-07 12:00"), 10*time.Millisecond)
	sunEarly := withReceived(ams("2025-06-08 02:30"), 10*time.Millisecond)
	pod := "/api/v1/namespaces/db/pods/pg-0"
	for _, c := range []struct {
		name string
		ev   *Event
		want []CriticalMatch
	}{
		{"dba at night, labels from response", mkEvent("get", pod, dba, wedNight, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "databases", Severity: "high", ExpectedActor: true, InWindow: true}}},
		{"backup SA glob in working hours", mkEvent("get", pod, backup, wedWork, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "databases", Severity: "high", ExpectedActor: true, InWindow: true}}},
		{"group db-admins, evening: outside windows", mkEvent("get", pod, dbAdmin, wedEve, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "databases", Severity: "critical", ExpectedActor: true, InWindow: false, Reason: "outside every window"}}},
		{"stranger in window", mkEvent("get", pod, wedNight, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "databases", Severity: "critical", ExpectedActor: false, InWindow: true, Reason: "actor not expected"}}},
		{"stranger on saturday noon: both, one step", mkEvent("get", pod, satNoon, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "databases", Severity: "critical", ExpectedActor: false, InWindow: false, Reason: "actor not expected; outside every window"}}},
		{"daily window on saturday", mkEvent("get", pod, dba, satNight, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "databases", Severity: "high", ExpectedActor: true, InWindow: true}}},
		{"prod-* namespace glob, statefulset", mkEvent("patch", "/apis/apps/v1/namespaces/prod-eu/statefulsets/mysql", dba, wedNight,
			withResponse(`{"metadata":{"name":"mysql","labels":{"app":"mysql","tier":"db"}}}`)),
			[]CriticalMatch{{Name: "databases", Severity: "high", ExpectedActor: true, InWindow: true}}},
		{"label selector not satisfied", mkEvent("get", pod, dba, wedNight,
			withResponse(`{"metadata":{"name":"pg-0","labels":{"app":"postgres","tier":"cache"}}}`)), nil},
		{"wrong group for resource", mkEvent("get", "/apis/apps/v1/namespaces/db/pods/pg-0", dba, wedNight, withResponse(pgPod("pg-0"))), nil},
		{"other namespace", mkEvent("get", "/api/v1/namespaces/dev/pods/pg-0", dba, wedNight, withResponse(pgPod("pg-0"))), nil},
		{"no labels known: no match", mkEvent("get", pod, dba, wedNight), nil},
		{"body of another object is not used", mkEvent("get", pod, dba, wedNight, withResponse(pgPod("pg-1"))), nil},
		{"secret names glob, no expectations: any actor, always", mkEvent("get", "/api/v1/namespaces/db/secrets/pg-password", satNoon),
			[]CriticalMatch{{Name: "db-secrets", Severity: "critical", ExpectedActor: true, InWindow: true}}},
		{"secret exact name", mkEvent("delete", "/api/v1/namespaces/db/secrets/mysql-root"),
			[]CriticalMatch{{Name: "db-secrets", Severity: "critical", ExpectedActor: true, InWindow: true}}},
		{"secret list has no name", mkEvent("list", "/api/v1/namespaces/db/secrets"), nil},
		{"secret other name", mkEvent("get", "/api/v1/namespaces/db/secrets/app-token"), nil},
		{"exec: subresource; across midnight UTC, sunday 00:30 belongs to saturday night",
			mkEvent("create", "/api/v1/namespaces/web/pods/w-1/exec?command=sh", sunEarly),
			[]CriticalMatch{{Name: "exec-anywhere", Severity: "low", ExpectedActor: true, InWindow: true}}},
		{"exec: saturday 00:59 UTC belongs to friday night (not listed)",
			mkEvent("create", "/api/v1/namespaces/web/pods/w-1/exec?command=sh", satNight),
			[]CriticalMatch{{Name: "exec-anywhere", Severity: "medium", ExpectedActor: true, InWindow: false, Reason: "outside every window"}}},
		{"exec on wednesday night: outside", mkEvent("create", "/api/v1/namespaces/web/pods/w-1/exec?command=sh", wedNight),
			[]CriticalMatch{{Name: "exec-anywhere", Severity: "medium", ExpectedActor: true, InWindow: false, Reason: "outside every window"}}},
		{"exec into a db pod: labels unknown (exec has no pod body, cache empty)", mkEvent("create", pod+"/exec?command=psql", dba, wedNight, withResponse(pgPod("pg-0"))),
			[]CriticalMatch{{Name: "exec-anywhere", Severity: "medium", ExpectedActor: true, InWindow: false, Reason: "outside every window"}}},
		{"pods/log is not exec", mkEvent("get", "/api/v1/namespaces/web/pods/w-1/log", satNight), nil},
		{"non-resource", mkEvent("get", "/healthz"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := processCrit(testCritical(t, 100), c.ev)
			assert.Equal(t, c.want, got)
		})
	}
}

// A Metadata-level exec or delete of a labelled database pod still matches:
// the labels were learned from an earlier event's body.
func TestCriticalLabelCache(t *testing.T) {
	st := testCritical(t, 2)
	at := withReceived(ams("2025-06-04 02:30"), 10*time.Millisecond)
	dba := withUser("dba-jane@example.com")
	pod := "/api/v1/namespaces/db/pods/pg-0"
	meta := withLevel(auditv1.LevelMetadata)
	names := func(ms []CriticalMatch) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}

	// Not seen yet: nothing known.
	assert.Empty(t, processCrit(st, mkEvent("delete", pod, dba, at, meta, withStage(auditv1.StageRequestReceived))))
	// A create's request body teaches the labels (objectRef has no name
	// on create at RequestReceived; the body's name is used).
	create := mkEvent("create", "/api/v1/namespaces/db/pods", dba, at, withRequest(pgPod("pg-0")), withStage(auditv1.StageRequestReceived))
	assert.Equal(t, []string{"databases"}, names(processCrit(st, create)), "creating a labelled db pod is critical")
	assert.Equal(t, 1, st.cache.Len())
	// Now Metadata-level events on the pod match from the cache.
	assert.Equal(t, []string{"databases"}, names(processCrit(st, mkEvent("get", pod, dba, at, meta))))
	assert.Equal(t, []string{"databases", "exec-anywhere"}, names(processCrit(st, mkEvent("create", pod+"/exec?command=sh", dba, at, meta))))
	// A patch body is not the object: it neither teaches nor overrides.
	processCrit(st, mkEvent("patch", pod, dba, at, withRequest(`{"metadata":{"name":"pg-0","labels":{"tier":"cache"}}}`)))
	assert.Equal(t, []string{"databases"}, names(processCrit(st, mkEvent("get", pod, dba, at, meta))))
	// An update that changes the labels is learned.
	processCrit(st, mkEvent("update", pod, dba, at, withResponse(`{"metadata":{"name":"pg-0","labels":{"app":"postgres","tier":"cache"}}}`)))
	assert.Empty(t, processCrit(st, mkEvent("get", pod, dba, at, meta)))
	processCrit(st, mkEvent("update", pod, dba, at, withResponse(pgPod("pg-0"))))

	// Objects outside every label selector's scope are not cached.
	processCrit(st, mkEvent("get", "/api/v1/namespaces/web/pods/w-1", at, withResponse(`{"metadata":{"name":"w-1","labels":{"app":"web"}}}`)))
	assert.Equal(t, 1, st.cache.Len())

	// A successful delete matches (ResponseComplete, Metadata) and then evicts.
	del := mkEvent("delete", pod, dba, at, meta)
	assert.Equal(t, []string{"databases"}, names(processCrit(st, del)))
	assert.Equal(t, 0, st.cache.Len())
	assert.Empty(t, processCrit(st, mkEvent("get", pod, dba, at, meta)))

	// The cache is bounded: the least recently used object goes first.
	for _, n := range []string{"pg-1", "pg-2", "pg-3"} {
		processCrit(st, mkEvent("get", "/api/v1/namespaces/db/pods/"+n, dba, at, withResponse(pgPod(n))))
	}
	assert.Equal(t, 2, st.cache.Len())
	assert.Empty(t, processCrit(st, mkEvent("get", "/api/v1/namespaces/db/pods/pg-1", dba, at, meta)))
	assert.Equal(t, []string{"databases"}, names(processCrit(st, mkEvent("get", "/api/v1/namespaces/db/pods/pg-3", dba, at, meta))))

	// Without a cache, only bodies count.
	nc := testCritical(t, 0)
	assert.Nil(t, nc.cache)
	processCrit(nc, mkEvent("get", pod, dba, at, withResponse(pgPod("pg-0"))))
	assert.Empty(t, processCrit(nc, mkEvent("get", pod, dba, at, meta)))
}

func TestCriticalWindows(t *testing.T) {
	compile := func(w windowSpec) window {
		cw, field, err := compileWindow(w)
		require.NoError(t, err, field)
		return cw
	}
	utc := func(s string) time.Time {
		tt, err := time.Parse("2006-01-02 15:04", s)
		require.NoError(t, err)
		return tt
	}
	// 2025-06-02 is a Monday.
	for _, c := range []struct {
		name string
		w    windowSpec
		at   time.Time
		in   bool
	}{
		{"daily 02-03 Amsterdam: 00:30 UTC is 02:30 CEST", windowSpec{Days: daysSpec{"daily"}, Start: "02:00", End: "03:00", TimeZone: "Europe/Amsterdam"}, utc("2025-06-02 00:30"), true},
		{"daily 02-03 Amsterdam: 02:30 UTC is 04:30 CEST", windowSpec{Start: "02:00", End: "03:00", TimeZone: "Europe/Amsterdam"}, utc("2025-06-02 02:30"), false},
		{"winter: 01:30 UTC is 02:30 CET", windowSpec{Start: "02:00", End: "03:00", TimeZone: "Europe/Amsterdam"}, utc("2025-01-06 01:30"), true},
		{"end is exclusive", windowSpec{Start: "02:00", End: "03:00"}, utc("2025-06-02 03:00"), false},
		{"start is inclusive", windowSpec{Start: "02:00", End: "03:00"}, utc("2025-06-02 02:00"), true},
		{"weekdays: monday", windowSpec{Days: daysSpec{"weekdays"}, Start: "09:00", End: "18:00"}, utc("2025-06-02 12:00"), true},
		{"weekdays: sunday", windowSpec{Days: daysSpec{"weekdays"}, Start: "09:00", End: "18:00"}, utc("2025-06-01 12:00"), false},
		{"weekends: sunday", windowSpec{Days: daysSpec{"weekends"}, Start: "00:00", End: "24:00"}, utc("2025-06-01 23:59"), true},
		{"specific days", windowSpec{Days: daysSpec{"Tue", "thursday"}, Start: "00:00", End: "24:00"}, utc("2025-06-05 08:00"), true},
		{"specific days miss", windowSpec{Days: daysSpec{"tue", "thu"}, Start: "00:00", End: "24:00"}, utc("2025-06-04 08:00"), false},
		{"across midnight, evening part on listed day", windowSpec{Days: daysSpec{"fri"}, Start: "22:00", End: "02:00"}, utc("2025-06-06 23:00"), true},
		{"across midnight, morning part belongs to the day before", windowSpec{Days: daysSpec{"fri"}, Start: "22:00", End: "02:00"}, utc("2025-06-07 01:59"), true},
		{"across midnight, friday morning is thursday's", windowSpec{Days: daysSpec{"fri"}, Start: "22:00", End: "02:00"}, utc("2025-06-06 01:00"), false},
		{"across midnight, ends", windowSpec{Days: daysSpec{"fri"}, Start: "22:00", End: "02:00"}, utc("2025-06-07 02:00"), false},
		{"time zone with offset date change", windowSpec{Days: daysSpec{"mon"}, Start: "08:00", End: "10:00", TimeZone: "Asia/Tokyo"}, utc("2025-06-01 23:30"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := compile(c.w)
			assert.Equal(t, c.in, w.contains(c.at))
		})
	}
}

func TestCriticalBadSelectors(t *testing.T) {
	for _, c := range []struct{ name, yaml, msg string }{
		{"bad glob", `[{name: a, namespaces: ["db-["]}]`, `selector "a": field namespaces: bad glob "db-[": syntax error in pattern`},
		{"bad label selector", `[{name: a, labels: "app in (x"}]`, `selector "a": field labels: `},
		{"bad time zone", `[{name: a, namespaces: [db], windows: [{start: "01:00", end: "02:00", time_zone: Mars/Olympus}]}]`,
			`selector "a": field windows[0].time_zone: "Mars/Olympus": unknown time zone Mars/Olympus`},
		{"bad start", `[{name: a, namespaces: [db], windows: [{start: "25:00", end: "02:00"}]}]`, `selector "a": field windows[0].start: "25:00": want "HH:MM", 24-hour`},
		{"missing end", `[{name: a, namespaces: [db], windows: [{start: "01:00"}]}]`, `selector "a": field windows[0].end: required`},
		{"empty window", `[{name: a, namespaces: [db], windows: [{start: "01:00", end: "01:00"}]}]`, `selector "a": field windows[0].end: window 01:00–01:00 is empty`},
		{"bad day", `[{name: a, namespaces: [db], windows: [{days: [funday], start: "01:00", end: "02:00"}]}]`, `selector "a": field windows[0].days: "funday"`},
		{"bad severity", `[{name: a, namespaces: [db], severity: urgent}]`, `selector "a": field severity: "urgent": want one of info, low, medium, high, critical`},
		{"bad service account", `[{name: a, namespaces: [db], expected_actors: {service_accounts: [backup]}}]`, `selector "a": field expected_actors.service_accounts: "backup": want namespace/name`},
		{"bad user glob", `[{name: a, namespaces: [db], expected_actors: {users: ["[a"]}}]`, `selector "a": field expected_actors.users: bad glob`},
		{"resource required", `[{name: a, resources: [{group: apps}]}]`, `selector "a": field resources[0].resource: required`},
		{"selects everything", `[{name: a, severity: high}]`, `selector "a": selects everything`},
		{"unnamed", `[{namespaces: [db]}]`, `selector #1: field name: required`},
		{"duplicate", `[{name: a, namespaces: [db]}, {name: a, namespaces: [x]}]`, `selector "a": field name: duplicate name`},
		{"unknown field", `[{name: a, namespace: [db]}]`, `unknown field "namespace"`},
		{"not a list", `name: a`, `want a YAML list of selectors`},
		{"empty", ``, `no selectors`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "crit.yaml")
			require.NoError(t, os.WriteFile(f, []byte(c.yaml), 0o600))
			_, err := NewPipeline(Options{CriticalFile: f, LabelCacheSize: 10})
			require.Error(t, err)
			var oe *OptionError
			require.True(t, errors.As(err, &oe))
			assert.Equal(t, "critical_workloads_file", oe.Key)
			assert.Equal(t, f, oe.Value)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pat, s string
		ok     bool
	}{
		{"db", "db", true}, {"db", "db2", false},
		{"*", "anything", true}, {"*", "a/b", false}, {"*", "", true},
		{"prod-*", "prod-eu", true}, {"prod-*", "prod-", true}, {"prod-*", "dev-eu", false},
		{"*@example.com", "jane@example.com", true}, {"*@example.com", "jane@example.org", false},
		{"pg-?", "pg-0", true}, {"pg-?", "pg-10", false},
		{"pg-[0-2]*", "pg-1x", true}, {"pg-[0-2]*", "pg-3", false},
		{"system:serviceaccount:db:*", "system:serviceaccount:db:backup", true},
	} {
		g, err := compileGlob(c.pat)
		require.NoError(t, err)
		assert.Equal(t, c.ok, g.match(c.s), "%q ~ %q", c.pat, c.s)
	}
}
