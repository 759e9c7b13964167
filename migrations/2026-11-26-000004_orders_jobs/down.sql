DROP TABLE imports, jobs, payment_events, order_allocations, order_lines, orders;
DROP SEQUENCE order_numbers;
