"""The notifq delivery worker: consumes chunk jobs and delivers through providers."""
