// A Go client for carbonmon: measures a window on an agent (Zeus's begin_window / end_window, remote),
// reads two power samples, and asks the intensity service for the grid's current intensity.
//
// Usage: carbonmon-go-example AGENT_ADDR [INTENSITY_ADDR [ZONE]]   (ZONE default DE)
// Build: ./build.sh OUT_DIR (generates the stubs from ../../proto with Debian's protoc, protoc-gen-go and
// protoc-gen-go-grpc, then builds offline against /usr/share/gocode).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	agentv1 "github.com/carbonmon/carbonmon/gen/go/carbonmon/agent/v1"
	intensityv1 "github.com/carbonmon/carbonmon/gen/go/carbonmon/intensity/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: carbonmon-go-example AGENT_ADDR [INTENSITY_ADDR [ZONE]]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(agentAddr string, rest []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, agentAddr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		return fmt.Errorf("agent %s: %w", agentAddr, err)
	}
	defer conn.Close()
	agent := agentv1.NewEnergyMonitorClient(conn)

	host, err := agent.GetHost(ctx, &agentv1.GetHostRequest{})
	if err != nil {
		return err
	}
	fmt.Printf("host %s: %d GPU(s), agent %s\n", host.Hostname, len(host.Gpus), host.AgentVersion)

	// The GPU indices below mean what this process's CUDA_VISIBLE_DEVICES means.
	begin := &agentv1.BeginWindowRequest{Key: "go-example", Labels: map[string]string{"client": "go"}}
	if cvd, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		begin.CudaVisibleDevices = &cvd
	}
	if _, err := agent.BeginWindow(ctx, begin); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the workload
	m, err := agent.EndWindow(ctx, &agentv1.EndWindowRequest{Key: "go-example"})
	if err != nil {
		return err
	}
	fmt.Printf("window %s: time %.3f s, total %.3f J, carbon %s\n", m.Key, m.TimeS, m.TotalEnergyJ, m.CarbonStatus)
	for _, i := range keys(m.GpuEnergyJ) {
		fmt.Printf("  gpu %d: %.3f J ± %.3f J, %.6f g\n", i, m.GpuEnergyJ[i], m.GpuEnergyUncertaintyJ[i], m.GpuCarbonG[i])
	}

	stream, err := agent.WatchPower(ctx, &agentv1.WatchPowerRequest{Period: durationpb.New(200 * time.Millisecond)})
	if err != nil {
		return err
	}
	for n := 0; n < 2; n++ {
		s, err := stream.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		for _, i := range keys(s.GpuPowerW) {
			fmt.Printf("power #%d gpu %d: %.1f W\n", s.Sequence, i, s.GpuPowerW[i])
		}
	}

	if len(rest) > 0 {
		iconn, err := grpc.DialContext(ctx, rest[0], grpc.WithInsecure(), grpc.WithBlock())
		if err != nil {
			return fmt.Errorf("intensity %s: %w", rest[0], err)
		}
		defer iconn.Close()
		zone := "DE"
		if len(rest) > 1 {
			zone = rest[1]
		}
		loc := &intensityv1.Location{Kind: &intensityv1.Location_Zone{Zone: zone}}
		p, err := intensityv1.NewCarbonIntensityClient(iconn).GetCurrentIntensity(ctx, &intensityv1.IntensityRequest{Location: loc})
		if err != nil {
			return err
		}
		fmt.Printf("intensity %s: %.1f g/kWh from %s (%s)\n", p.Zone, p.GPerKwh, p.Provider, p.Source)
	}
	return nil
}

func keys(m map[uint32]float64) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}
