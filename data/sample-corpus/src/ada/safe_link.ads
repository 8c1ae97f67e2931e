--  Sentinel IXL 4.3.1 - Safety link between interlocking core and object
--  controllers (OCs).
--
--  Every safety link message carries a 16-bit sequence number and a
--  CRC-32. The core expects a heartbeat from each OC every
--  oc_heartbeat_ms and declares the OC lost after oc_heartbeat_miss_limit
--  consecutive misses (E81-A).
--
--  Codes raised by this package (docs/errors-comms.md):
--    E81-A  object controller heartbeat lost
--    E81-B  safety link sequence error
--    E81-C  safety link CRC error rate exceeded (safe_link_crc_error_limit)
--    W81-D  heartbeat jitter above half of oc_heartbeat_ms
--
--  All timing uses the monotonic clock (Ada.Real_Time). Up to 4.3.0 the
--  wall clock was used and a backward time-sync step could raise a false
--  E81-A (SIXL-2260).

with Ada.Real_Time;
with Interfaces;

package Safe_Link is

   use type Interfaces.Unsigned_16;

   Max_OCs : constant := 56;
   type OC_Index is range 1 .. Max_OCs;

   --  Sequence numbers within this window ahead of the expected one are
   --  accepted (messages lost in between); anything else is E81-B.
   Sequence_Window : constant Interfaces.Unsigned_16 := 8;

   type Link_State is (Link_Up, Link_Degraded, Link_Lost);

   type Link_Config is record
      Heartbeat_Ms       : Positive := 100;  --  oc_heartbeat_ms
      Miss_Limit         : Positive := 3;    --  oc_heartbeat_miss_limit
      Crc_Errors_Per_Min : Positive := 5;    --  safe_link_crc_error_limit
   end record;

   type OC_Link is record
      Name            : String (1 .. 4) := "OC00";
      State           : Link_State := Link_Lost;
      Expected_Seq    : Interfaces.Unsigned_16 := 0;
      Last_Heartbeat  : Ada.Real_Time.Time := Ada.Real_Time.Time_First;
      Missed          : Natural := 0;
      Crc_Errors      : Natural := 0;
      Crc_Window_Start: Ada.Real_Time.Time := Ada.Real_Time.Time_First;
   end record;

   type OC_Link_Array is array (OC_Index) of OC_Link;

   --  Load timing parameters from the station configuration.
   procedure Configure (Cfg : Link_Config);

   --  Process one received message from an OC.
   --  Crc_Ok is the result of the CRC-32 check done by the driver.
   procedure On_Message
     (Links  : in out OC_Link_Array;
      OC     : OC_Index;
      Seq    : Interfaces.Unsigned_16;
      Crc_Ok : Boolean);

   --  Called every IXC cycle (100 ms). Counts missed heartbeats and
   --  raises E81-A when the miss limit is reached.
   procedure Supervise (Links : in out OC_Link_Array);

   --  True when the OC's objects may be used by the interlocking.
   function Is_Usable (Links : OC_Link_Array; OC : OC_Index) return Boolean;

end Safe_Link;
