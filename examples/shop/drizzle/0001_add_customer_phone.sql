ALTER TABLE "customers" ADD COLUMN "phone" varchar(32);--> statement-breakpoint
CREATE INDEX "customers_phone_idx" ON "customers" USING btree ("phone");