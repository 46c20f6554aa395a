package filter

import (
	"reflect"
	"time"

	"github.com/modern-go/reflect2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type reflectType = reflect2.Type

var microTimeType = reflect.TypeOf(metav1.MicroTime{})

// ParseTime parses an RFC 3339 timestamp as the apiserver writes it
// ("2024-07-02T17:01:26.365713Z"), with a fast path for UTC and any
// fraction length, falling back to time.Parse for offsets.
func ParseTime(s []byte) (time.Time, error) {
	if len(s) >= 20 && s[len(s)-1] == 'Z' && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' {
		year, ok1 := digits(s[0:4])
		month, ok2 := digits(s[5:7])
		day, ok3 := digits(s[8:10])
		hour, ok4 := digits(s[11:13])
		minute, ok5 := digits(s[14:16])
		sec, ok6 := digits(s[17:19])
		nsec, ok7 := 0, true
		if len(s) > 20 {
			if s[19] != '.' || len(s) > 30 {
				ok7 = false
			} else {
				frac := s[20 : len(s)-1]
				nsec, ok7 = digits(frac)
				for i := len(frac); i < 9; i++ {
					nsec *= 10
				}
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour < 24 && minute < 60 && sec < 61 {
			return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), nil
		}
	}
	return time.Parse(time.RFC3339Nano, string(s))
}

func digits(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// AppendMicroTime appends t as the apiserver writes a MicroTime: UTC,
// six fraction digits.
func AppendMicroTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, metav1.RFC3339Micro)
}
