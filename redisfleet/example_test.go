package redisfleet_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/provenrand/entropy"
	"github.com/provenrand/entropy/redisfleet"
	"github.com/provenrand/entropy/sim"
)

// Three replicas of an application share one API key and one quota of 20
// requests/s: each gives the same fleet name and rate limit, and declares
// the fleet's size so that, while Redis is unreachable, each sends at most
// a third of the rate.
func ExampleNew() {
	client, err := redisfleet.NewClient("redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	service := sim.New()
	defer service.Close()
	src, err := service.Source()
	if err != nil {
		log.Fatal(err)
	}
	p, err := entropy.New(src,
		entropy.WithRateLimit(20, 2),
		entropy.WithFleet(redisfleet.New(client, redisfleet.WithName("prod"), redisfleet.WithFleetSize(3))),
		entropy.WithFleetHook(func(ev entropy.FleetStatus) {
			log.Printf("fleet %s shared=%v err=%v", ev.Name, ev.Shared, ev.LastError)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := make([]byte, 32)
	lb, err := p.ReadLabelled(ctx, b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lb.Verifiable, p.Stats().Fleet.Shared)
}
