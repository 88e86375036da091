{{- /*
The alerting rules, as a Prometheus rule file's `groups`. Only the leader sets the budget gauges
(a standby clears them), so `max by (budget)` reads the leader's figures.
*/ -}}
{{- define "steward.alertGroups" -}}
groups:
  - name: steward.budgets
    rules:
      - alert: StewardBudgetWarning
        expr: max by (budget) (steward_budget_utilization_percent) >= {{ .Values.metrics.prometheusRule.budgetWarningPercent }} < 100
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "Budget {{ "{{" }} $labels.budget {{ "}}" }} has spent {{ "{{" }} $value | humanize {{ "}}" }} % of its limit"
          description: "Steward's ladder acts at the budget's thresholds; `steward explain` shows what it did."
      - alert: StewardBudgetExceeded
        expr: max by (budget) (steward_budget_utilization_percent) >= 100
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "Budget {{ "{{" }} $labels.budget {{ "}}" }} is over its limit ({{ "{{" }} $value | humanize {{ "}}" }} %)"
      - alert: StewardBudgetForecastOverrun
        expr: max by (budget, unit) (steward_budget_forecast) / max by (budget, unit) (steward_budget_limit > 0) > 1
        for: 1h
        labels:
          severity: warning
        annotations:
          summary: "Budget {{ "{{" }} $labels.budget {{ "}}" }} is forecast to end the period at {{ "{{" }} $value | humanizePercentage {{ "}}" }} of its {{ "{{" }} $labels.unit {{ "}}" }} limit"
      - alert: StewardBudgetDataStale
        expr: max by (budget) (steward_budget_data_stale) == 1
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "Budget {{ "{{" }} $labels.budget {{ "}}" }} has no fresh metrics: nothing is enforced until they return"
  - name: steward.operator
    rules:
      - alert: StewardNoLeader
        expr: (max(steward_leader) or vector(0)) < 1
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "No Steward replica holds the lease: budgets are neither accounted nor enforced"
      - alert: StewardCycleSlow
        expr: histogram_quantile(0.95, sum by (le, phase) (rate(steward_cycle_duration_seconds_bucket[15m]))) > 30
        for: 30m
        labels:
          severity: warning
        annotations:
          summary: "Steward's {{ "{{" }} $labels.phase {{ "}}" }} phase takes {{ "{{" }} $value | humanizeDuration {{ "}}" }} at p95"
{{- end -}}
