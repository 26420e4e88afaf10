"""The notifq operator: turns Campaign resources into rows and jobs, and reports status."""
