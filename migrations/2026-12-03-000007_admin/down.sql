DROP INDEX orders_email_lower_idx;
ALTER TABLE orders DROP COLUMN fulfilled_at, DROP COLUMN tracking_number, DROP COLUMN tracking_url,
    DROP COLUMN refunded_minor, DROP COLUMN refunded_at;
DROP TABLE exports;
DROP TABLE webhook_subscriptions;
DROP TABLE audit_log;
DROP TABLE api_keys;
