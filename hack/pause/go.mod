module notifq.dev/pause

go 1.25.0
