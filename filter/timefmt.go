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
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, metav1.RFC3339Micro)
	}
	// The same bytes as AppendFormat(RFC3339Micro) for four-digit years
	// (TestAppendMicroTimeMatchesFormat), without parsing the layout.
	hour, min, sec := t.Clock()
	us := t.Nanosecond() / 1000
	var d [27]byte
	put := func(i, v, n int) {
		for j := i + n - 1; j >= i; j-- {
			d[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	d[4] = '-'
	put(5, int(month), 2)
	d[7] = '-'
	put(8, day, 2)
	d[10] = 'T'
	put(11, hour, 2)
	d[13] = ':'
	put(14, min, 2)
	d[16] = ':'
	put(17, sec, 2)
	d[19] = '.'
	put(20, us, 6)
	d[26] = 'Z'
	return append(b, d[:]...)
}
