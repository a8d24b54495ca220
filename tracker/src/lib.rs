//! Tracker: session init, peer lists matched per swarm.
