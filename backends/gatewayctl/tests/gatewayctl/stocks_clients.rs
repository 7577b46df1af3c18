//! Stocks and clients: list and upsert.

use super::*;

#[tokio::test]
async fn stocks_and_clients_can_be_listed_and_upserted() {
    for db in databases().await {
        let stocks = db.ok(&["stocks", "list", "--json"]);
        assert_eq!(stocks.lines().count(), 8);
        assert!(stocks.contains(r#""current_rate":"0.6475""#), "{stocks}");
        let out = db.ok(&stock_upsert(RIVN));
        assert!(out.contains("RIVN saved: rate 0.033 (MEDIUM)"), "{out}");
        assert!(db.ok(&["stocks", "list"]).contains("RIVN"));

        db.ok(&client_upsert(["new_desk", "3.25", "PERCENTAGE", "0.02"]));
        let clients = db.ok(&["clients", "list", "--json"]);
        assert_eq!(clients.lines().count(), 5);
        assert!(clients.contains(r#""client_id":"new_desk""#));
        assert!(clients.contains(r#""markup_percentage":"3.25""#));
        db.drop_it().await;
    }
}
