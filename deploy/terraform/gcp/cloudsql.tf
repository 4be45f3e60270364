# The state store: PostgreSQL on Cloud SQL, private IP only. The connection URL (with the
# generated password) is kept in Secret Manager; copy it into the Kubernetes Secret
# probcast-state (docs/deployment.md).
resource "google_sql_database_instance" "state" {
  name                = "probcast-state"
  database_version    = "POSTGRES_16"
  region              = var.region
  deletion_protection = true

  settings {
    tier              = var.sql_tier
    edition           = "ENTERPRISE"
    availability_type = "ZONAL"
    disk_autoresize   = true
    user_labels       = local.labels
    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.vpc.id
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      backup_retention_settings {
        retained_backups = 14
      }
    }
  }
  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "state" {
  name     = "probcast"
  instance = google_sql_database_instance.state.name
}

resource "random_password" "state" {
  length  = 32
  special = false
}

resource "google_sql_user" "state" {
  name     = "probcast"
  instance = google_sql_database_instance.state.name
  password = random_password.state.result
}

resource "google_secret_manager_secret" "state_url" {
  secret_id = "probcast-state-url"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "state_url" {
  secret      = google_secret_manager_secret.state_url.id
  secret_data = "postgresql+psycopg://probcast:${random_password.state.result}@${google_sql_database_instance.state.private_ip_address}:5432/probcast"
}
