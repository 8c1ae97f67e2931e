--  Sentinel IXL 4.3.1 - Safety link supervision (body).
--  See safe_link.ads for the interface and docs/errors-comms.md for codes.

with Diag_Log;   --  thin Ada binding to diag_log() in src/common/diag_log.c

package body Safe_Link is

   use Ada.Real_Time;
   use type Interfaces.Unsigned_16;

   Current : Link_Config;

   procedure Configure (Cfg : Link_Config) is
   begin
      Current := Cfg;
   end Configure;

   --  Register a CRC failure and declare the link unusable when more than
   --  Crc_Errors_Per_Min failures occur within one minute (E81-C).
   procedure Count_Crc_Error (L : in out OC_Link) is
      Now : constant Time := Clock;
   begin
      if Now - L.Crc_Window_Start > Seconds (60) then
         L.Crc_Window_Start := Now;
         L.Crc_Errors := 0;
      end if;
      L.Crc_Errors := L.Crc_Errors + 1;
      if L.Crc_Errors > Current.Crc_Errors_Per_Min
        and then L.State /= Link_Lost
      then
         L.State := Link_Lost;
         Diag_Log.Error
           (Subsys  => "LINK", Code => "E81-C", Object => L.Name,
            Func    => "count_crc_error",
            Message => "safety link CRC error rate exceeded",
            Details => "errors=" & Natural'Image (L.Crc_Errors)
                       & " limit=" & Positive'Image (Current.Crc_Errors_Per_Min));
      end if;
   end Count_Crc_Error;

   procedure On_Message
     (Links  : in out OC_Link_Array;
      OC     : OC_Index;
      Seq    : Interfaces.Unsigned_16;
      Crc_Ok : Boolean)
   is
      L        : OC_Link renames Links (OC);
      Now      : constant Time := Clock;
      Interval : Time_Span;
      Ahead    : Interfaces.Unsigned_16;
   begin
      if not Crc_Ok then
         Count_Crc_Error (L);
         return;
      end if;

      --  Modular difference: wrap-around of the 16-bit counter is fine.
      Ahead := Seq - L.Expected_Seq;
      if L.State /= Link_Lost and then Ahead > Sequence_Window then
         Diag_Log.Error
           (Subsys  => "LINK", Code => "E81-B", Object => L.Name,
            Func    => "on_message",
            Message => "safety link sequence error",
            Details => "expected=" & Interfaces.Unsigned_16'Image (L.Expected_Seq)
                       & " received=" & Interfaces.Unsigned_16'Image (Seq));
         return;   --  message discarded
      end if;

      --  Jitter supervision: warn above half the nominal period (W81-D).
      Interval := Now - L.Last_Heartbeat;
      if L.State = Link_Up
        and then Interval > Milliseconds (Current.Heartbeat_Ms + Current.Heartbeat_Ms / 2)
      then
         L.State := Link_Degraded;
         Diag_Log.Warn
           (Subsys  => "LINK", Code => "W81-D", Object => L.Name,
            Func    => "on_message",
            Message => "heartbeat jitter high",
            Details => "interval_ms=" & Integer'Image (Interval / Milliseconds (1)));
      elsif L.State /= Link_Lost then
         L.State := Link_Up;
      end if;

      if L.State = Link_Lost then
         --  re-synchronise after recovery; a single E81-B may follow
         L.State := Link_Up;
      end if;

      L.Expected_Seq   := Seq + 1;
      L.Last_Heartbeat := Now;
      L.Missed         := 0;
   end On_Message;

   procedure Supervise (Links : in out OC_Link_Array) is
      Now    : constant Time := Clock;
      Period : constant Time_Span := Milliseconds (Current.Heartbeat_Ms);
   begin
      for I in Links'Range loop
         declare
            L : OC_Link renames Links (I);
         begin
            if L.State /= Link_Lost then
               --  monotonic clock: Now - Last_Heartbeat is never negative
               L.Missed := (Now - L.Last_Heartbeat) / Period;
               if L.Missed >= Current.Miss_Limit then
                  L.State := Link_Lost;
                  Diag_Log.Error
                    (Subsys  => "LINK", Code => "E81-A", Object => L.Name,
                     Func    => "supervise",
                     Message => "object controller heartbeat lost",
                     Details => "missed=" & Natural'Image (L.Missed)
                                & " heartbeat_ms=" & Positive'Image (Current.Heartbeat_Ms));
               end if;
            end if;
         end;
      end loop;
   end Supervise;

   function Is_Usable (Links : OC_Link_Array; OC : OC_Index) return Boolean is
   begin
      return Links (OC).State /= Link_Lost;
   end Is_Usable;

end Safe_Link;
