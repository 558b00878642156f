package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// clusterStatus is GET /cluster on the metrics listener (daemon).
type clusterStatus struct {
	Node      string `json:"node"`
	Connected bool   `json:"connected"`
	Ready     bool   `json:"ready"`
	Replicas  int    `json:"replicas"`
	Nodes     []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Self  bool   `json:"self"`
		Alive bool   `json:"alive"`
		Relay struct {
			Addr string `json:"addr"`
			Min  int    `json:"Min"`
			Max  int    `json:"Max"`
		} `json:"relay"`
		Peers int `json:"peers"`
	} `json:"nodes"`
	RoomCount int `json:"room_count"`
	PeerCount int `json:"peer_count"`
	Rooms     map[string][]struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Node string `json:"node"`
	} `json:"rooms"`
}

// clusterCmd is `icebox cluster status`: it asks the running icebox of
// -config, on its metrics listener (or -addr), for its view of the
// cluster and prints the nodes and the number of rooms and peers, then,
// with -rooms, the rooms with their peers by node.
func clusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		return errors.New("usage: icebox cluster status [-config FILE] [-addr HOST:PORT] [-rooms]")
	}
	f := newFlags("cluster status", stderr)
	addr := f.fs.String("addr", "", "metrics listener of the running icebox (default: metrics.listen of -config)")
	listRooms := f.fs.Bool("rooms", false, "list the rooms and their peers' names (GET /cluster?rooms=1)")
	if err := f.fs.Parse(args[1:]); err != nil {
		return err
	}
	if *addr == "" {
		cfg, err := f.load()
		if err != nil {
			return err
		}
		if cfg.Cluster == nil {
			return errors.New("this icebox has no cluster section: it is a single node")
		}
		if cfg.Parsed.MetricsAddr == "" {
			return errors.New("metrics.listen is off; give -addr")
		}
		*addr = cfg.Parsed.MetricsAddr
		if strings.HasPrefix(*addr, ":") || strings.HasPrefix(*addr, "0.0.0.0:") {
			*addr = "127.0.0.1:" + (*addr)[strings.LastIndex(*addr, ":")+1:]
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/cluster"+map[bool]string{true: "?rooms=1"}[*listRooms], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking icebox at %s: %w", *addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("icebox at %s answered %s: is it a node of a cluster?", *addr, resp.Status)
	}
	var st clusterStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
		return fmt.Errorf("icebox at %s: %w", *addr, err)
	}
	printClusterStatus(stdout, &st, *listRooms)
	return nil
}

func printClusterStatus(w io.Writer, st *clusterStatus, listRooms bool) {
	yes := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "this node: %s  NATS connected: %s  ready: %s  rooms bucket copies: %d\n\n",
		st.Node, yes[st.Connected], yes[st.Ready], st.Replicas)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tALIVE\tRELAY\tPEERS")
	names := map[string]string{}
	for _, n := range st.Nodes {
		names[n.ID] = n.Name
		name := n.Name
		if n.Self {
			name += " (this)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d-%d\t%d\n", name, n.ID, yes[n.Alive], n.Relay.Addr, n.Relay.Min, n.Relay.Max, n.Peers)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d rooms, %d peers\n", st.RoomCount, st.PeerCount)
	if !listRooms {
		return
	}
	rooms := make([]string, 0, len(st.Rooms))
	for r := range st.Rooms {
		rooms = append(rooms, r)
	}
	sort.Strings(rooms)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tPEERS BY NODE")
	for _, r := range rooms {
		byNode := map[string][]string{}
		for _, p := range st.Rooms[r] {
			n := names[p.Node]
			if n == "" {
				n = p.Node
			}
			byNode[n] = append(byNode[n], p.Name)
		}
		nodes := make([]string, 0, len(byNode))
		for n := range byNode {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		parts := make([]string, 0, len(nodes))
		for _, n := range nodes {
			parts = append(parts, fmt.Sprintf("%s: %s", n, strings.Join(byNode[n], ", ")))
		}
		fmt.Fprintf(tw, "%s\t%s\n", r, strings.Join(parts, "; "))
	}
	tw.Flush()
}
