-- Custom SQL migration file, put your code below! --
-- Seed a few rows, then build an index on orders.placed_at without blocking writes
-- (the last chunk; it cannot run inside a transaction block).
INSERT INTO "customers" ("email", "name", "phone") VALUES ('ada@example.com', 'Ada Lovelace', '+44 20 7946 0001'), ('grace@example.com', 'Grace Hopper', NULL);--> statement-breakpoint
INSERT INTO "products" ("sku", "name", "price_cents", "stock") VALUES ('MUG-001', 'Enamel mug', 1200, 40), ('TEE-002', 'Logo t-shirt', 2500, 25), ('STK-003', 'Sticker pack', 400, 300);--> statement-breakpoint
INSERT INTO "orders" ("customer_id", "status") VALUES ((SELECT "id" FROM "customers" WHERE "email" = 'ada@example.com'), 'paid');--> statement-breakpoint
INSERT INTO "order_lines" ("order_id", "product_id", "quantity", "unit_price") VALUES ((SELECT max("id") FROM "orders"), (SELECT "id" FROM "products" WHERE "sku" = 'MUG-001'), 2, 12.00), ((SELECT max("id") FROM "orders"), (SELECT "id" FROM "products" WHERE "sku" = 'STK-003'), 1, 4.00);--> statement-breakpoint
INSERT INTO "reviews" ("product_id", "customer_id", "rating", "body") VALUES ((SELECT "id" FROM "products" WHERE "sku" = 'MUG-001'), (SELECT "id" FROM "customers" WHERE "email" = 'ada@example.com'), 5, 'Keeps coffee hot.');--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "orders_placed_at_idx" ON "orders" ("placed_at");
