//! A real Prometheus server process on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use e2e::stand_in::client;

/// A Prometheus server process; killed on drop.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        Prometheus::start_with(&format!(
            "  - job_name: gateway\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// Prometheus scraping every second with `scrape_configs` (YAML list
    /// items indented by two spaces).
    pub fn start_with(scrape_configs: &str) -> Prometheus {
        let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("prometheus is not installed: apt-get install -y --no-install-recommends prometheus");
        let port = e2e::free_port();
        let dir =
            std::env::temp_dir().join(format!("ops-prometheus-{}-{}", std::process::id(), port));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Prometheus { child, port, dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            let url = format!("http://127.0.0.1:{}/-/ready", self.port);
            if let Ok(r) = client().get(url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Instant query; answers the result vector.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let r = client()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls a query until it has a sample for which `accept` holds.
    pub async fn wait_for(&self, promql: &str, accept: impl Fn(f64) -> bool) -> f64 {
        let accept = &accept;
        e2e::poll(
            Duration::from_secs(45),
            Duration::from_millis(500),
            || async move {
                let values: Vec<f64> = self
                    .query(promql)
                    .await
                    .iter()
                    .filter_map(|s| s["value"][1].as_str()?.parse().ok())
                    .collect();
                values.iter().copied().find(|v| accept(*v)).ok_or_else(|| {
                    format!(
                        "`{promql}` never gave an acceptable value (last {values:?})\n{}",
                        self.log()
                    )
                })
            },
        )
        .await
    }

    pub async fn scrape_health(&self) -> Value {
        let r = client()
            .get(format!("http://127.0.0.1:{}/api/v1/targets", self.port))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
