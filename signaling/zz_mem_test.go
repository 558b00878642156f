package signaling

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestZZMem(t *testing.T) {
	s := New(Config{Limits: Limits{MaxPeersPerRoom: 4}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(s)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	n := 2000
	var conns []*websocket.Conn
	for i := 0; i < n; i++ {
		d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteJSON(map[string]string{"type": "join", "room": fmt.Sprintf("r%d", i/4), "name": fmt.Sprint(i)})
		var m map[string]any
		c.ReadJSON(&m)
		conns = append(conns, c)
	}
	time.Sleep(time.Second)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	fmt.Printf("heap/conn (incl client side) %.1f KiB, stack/conn %.1f KiB, goroutines %d\n",
		float64(ms1.HeapInuse-ms0.HeapInuse)/float64(n)/1024, float64(ms1.StackInuse-ms0.StackInuse)/float64(n)/1024, runtime.NumGoroutine())
}
