use std::time::Duration;

use super::*;
use crate::metrics::collect::tests::broker;

#[test]
fn readiness_follows_startup_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let state = AdminState::default();
    assert!(matches!(state.readiness(), Readiness::NotReady(r) if r.contains("Kafka listener")));
    state.kafka_listener_bound("127.0.0.1:9092".parse().unwrap());
    assert!(matches!(state.readiness(), Readiness::NotReady(r) if r.contains("opening the data directory")));
    assert_eq!(state.cluster_status()["state"], "starting");
    let b = broker(dir.path());
    state.broker_opened(b.clone());
    assert_eq!(state.readiness(), Readiness::Ready);
    assert_eq!(state.cluster_status()["state"], "ready");
    b.begin_shutdown();
    assert!(matches!(state.readiness(), Readiness::NotReady(r) if r.starts_with("draining")));
    assert_eq!(state.cluster_status()["state"], "draining");
}

#[tokio::test]
async fn served_over_http_and_checked_by_the_healthcheck_client() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(AdminState::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let check = || healthcheck::check_ready(&addr, Duration::from_secs(10));
    match check().await {
        Err(healthcheck::HealthError::NotReady { status, reason }) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(reason.starts_with("starting"), "{reason}");
        }
        other => panic!("expected not ready: {other:?}"),
    }
    state.kafka_listener_bound("127.0.0.1:9092".parse().unwrap());
    state.broker_opened(broker(dir.path()));
    check().await.expect("ready");
    assert_eq!(state.cluster_status()["listeners"]["admin"], addr.as_str());
    stop.send(()).unwrap();
    server.await.unwrap();
    assert!(matches!(check().await, Err(healthcheck::HealthError::Connect { .. })));
}
