"""The user side of perfwatch: publish live host metrics, replay recorded runs, generate synthetic
load, subscribe to alerts, and draw a run's report."""
